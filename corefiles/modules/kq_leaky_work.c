// SPDX-License-Identifier: GPL-2.0
/*
 * kq_leaky_work: an unload crash. A delayed_work in kmalloc'ed memory runs
 * kq_leaky_work_fn (module text) on the system workqueue every 100 ms,
 * re-queueing itself. The module pins itself while the work is queued (a
 * plain rmmod refuses), and its exit forgets cancel_delayed_work_sync: after
 * a forced unload (rmmod -f) the next run calls into freed text from a
 * kworker. Not in any standard guest (scripts/lab's EXTRA_SCENARIOS);
 * `scripts/lab prepare` makes crash-kq_leaky_work.elf.
 */
#include <linux/workqueue.h>
#include <linux/jiffies.h>
#include <linux/slab.h>
#include "kq_scenario.h"

struct kq_leaky_work_state {
	struct delayed_work dwork;
	unsigned long runs;
};

static struct kq_leaky_work_state *kq_leaky_work_st;

static void kq_leaky_work_fn(struct work_struct *w)
{
	struct kq_leaky_work_state *st = container_of(to_delayed_work(w), struct kq_leaky_work_state, dwork);

	WRITE_ONCE(st->runs, st->runs + 1);
	schedule_delayed_work(&st->dwork, HZ / 10);
}

static int kq_leaky_work_start(void)
{
	kq_leaky_work_st = kzalloc(sizeof(*kq_leaky_work_st), GFP_KERNEL);
	if (!kq_leaky_work_st)
		return -ENOMEM;
	INIT_DELAYED_WORK(&kq_leaky_work_st->dwork, kq_leaky_work_fn);
	schedule_delayed_work(&kq_leaky_work_st->dwork, HZ / 10);
	__module_get(THIS_MODULE);
	pr_info(KBUILD_MODNAME ": work queued, every 100 ms\n");
	return 0;
}

static void kq_leaky_work_stop(void)
{
	/* The bug: no cancel_delayed_work_sync(&kq_leaky_work_st->dwork), no kfree. */
	pr_info(KBUILD_MODNAME ": stopping\n");
}

KQ_SCENARIO(kq_leaky_work, "kquiesce crash scenario: a work item left queued by the module's exit");
