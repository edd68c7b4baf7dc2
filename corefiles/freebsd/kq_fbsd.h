/* kq_fbsd.ko's softc, shared with the generator that lays it out. */
#ifndef KQ_FBSD_H
#define KQ_FBSD_H

#include "fbsd_types.h"

struct kq_fbsd_softc {
	struct mtx sc_mtx;
	struct callout sc_callout;
	int sc_ticks;
	volatile int sc_stop;
	char sc_name[16];
};

#endif
