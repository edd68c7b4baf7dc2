// SPDX-License-Identifier: GPL-2.0
/*
 * kq_null_deref: a crash that is no unload crash. Writing its parameter
 * (/sys/module/kq_null_deref/parameters/trigger) makes kq_null_deref_set
 * (module text, the module loaded) write through a NULL pointer. Not in any
 * standard guest (scripts/lab's EXTRA_SCENARIOS); `scripts/lab prepare`
 * makes crash-kq_null_deref.elf.
 */
#include <linux/moduleparam.h>
#include "kq_scenario.h"

struct kq_null_deref_state {
	unsigned long pad[2];
	unsigned long hits;
};

/* Never set: the bug. */
static struct kq_null_deref_state *kq_null_deref_st;

static int kq_null_deref_set(const char *val, const struct kernel_param *kp)
{
	struct kq_null_deref_state *st = READ_ONCE(kq_null_deref_st);

	WRITE_ONCE(st->hits, st->hits + 1);
	return 0;
}

static const struct kernel_param_ops kq_null_deref_ops = {
	.set = kq_null_deref_set,
};
module_param_cb(trigger, &kq_null_deref_ops, NULL, 0200);
MODULE_PARM_DESC(trigger, "write anything: dereference NULL");

static int kq_null_deref_start(void)
{
	return 0;
}

static void kq_null_deref_stop(void)
{
}

KQ_SCENARIO(kq_null_deref, "kquiesce crash scenario: a NULL dereference while loaded");
