/*
 * The FreeBSD kernel state the fixture dumps hold: processes and threads
 * (with kernel stacks and saved contexts), the kernel and kq_fbsd.ko as
 * linker files and modules, per-CPU callout wheels, the module's mutex with
 * a waiter and an owner. "busy" plants every use of kq_fbsd; "idle" has the
 * module loaded but unused.
 */
#ifndef KQ_FBSD_GEN_SCENARIO_H
#define KQ_FBSD_GEN_SCENARIO_H

#include <stdio.h>

#include "image.h"
#include "machine.h"

struct scenario {
	int busy;
	struct kernel_image kernel;
	struct module_image module;
	uint64_t msgbuf_pa;		/* the message buffer's text */
	uint32_t msgbuf_size;
	FILE *manifest;			/* what tests may check, one fact a line */
};

/* Builds everything in m from the kernel image and the module at these paths. */
void build_scenario(struct machine *m, struct scenario *s, const char *kernel, const char *ko);

#endif
