// SPDX-License-Identifier: GPL-2.0
/*
 * kq_leaky_timer: an unload crash. A timer_list in kmalloc'ed memory calls
 * kq_leaky_timer_fn (module text) every 100 ms, re-arming itself. The module
 * pins itself while the timer runs (a plain rmmod refuses), and its exit
 * forgets del_timer_sync: after a forced unload (rmmod -f) the next expiry
 * calls into freed text. Not in any standard guest (scripts/lab's
 * EXTRA_SCENARIOS); `scripts/lab prepare` makes crash-kq_leaky_timer.elf.
 */
#include <linux/timer.h>
#include <linux/jiffies.h>
#include <linux/slab.h>
#include "kq_scenario.h"

struct kq_leaky_timer_state {
	struct timer_list timer;
	unsigned long fired;
};

static struct kq_leaky_timer_state *kq_leaky_timer_st;

static void kq_leaky_timer_fn(struct timer_list *t)
{
	struct kq_leaky_timer_state *st = from_timer(st, t, timer);

	WRITE_ONCE(st->fired, st->fired + 1);
	mod_timer(&st->timer, jiffies + HZ / 10);
}

static int kq_leaky_timer_start(void)
{
	kq_leaky_timer_st = kzalloc(sizeof(*kq_leaky_timer_st), GFP_KERNEL);
	if (!kq_leaky_timer_st)
		return -ENOMEM;
	timer_setup(&kq_leaky_timer_st->timer, kq_leaky_timer_fn, 0);
	mod_timer(&kq_leaky_timer_st->timer, jiffies + HZ / 10);
	__module_get(THIS_MODULE);
	pr_info(KBUILD_MODNAME ": timer armed, every 100 ms\n");
	return 0;
}

static void kq_leaky_timer_stop(void)
{
	/* The bug: no del_timer_sync(&kq_leaky_timer_st->timer), no kfree. */
	pr_info(KBUILD_MODNAME ": stopping\n");
}

KQ_SCENARIO(kq_leaky_timer, "kquiesce crash scenario: a timer left pending by the module's exit");
