/* kq_fbsd.ko's softc, shared with the generator that lays it out. */
#ifndef KQ_FBSD_H
#define KQ_FBSD_H

#include "fbsd_types.h"

struct kq_fbsd_softc {
	struct mtx sc_mtx;
	struct sx sc_sx;		/* held by the sleeper */
	struct callout sc_callout;
	struct task sc_task;		/* queued on taskqueue_thread */
	void *sc_shutdown_tag;		/* its shutdown_pre_sync handler */
	int sc_ticks;
	volatile int sc_stop;
	char sc_name[16];
};

#endif
