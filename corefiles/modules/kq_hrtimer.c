// SPDX-License-Identifier: GPL-2.0
/*
 * kq_hrtimer: an hrtimer in the module's data, armed for 1000 s, whose
 * function kq_hrtimer_fn is module code.
 */
#include <linux/module.h>
#include <linux/hrtimer.h>
#include <linux/ktime.h>

static struct hrtimer kq_hrtimer_timer;

static enum hrtimer_restart kq_hrtimer_fn(struct hrtimer *t)
{
	pr_info("kq_hrtimer: fired\n");
	return HRTIMER_NORESTART;
}

static int __init kq_hrtimer_init(void)
{
	hrtimer_init(&kq_hrtimer_timer, CLOCK_MONOTONIC, HRTIMER_MODE_REL);
	kq_hrtimer_timer.function = kq_hrtimer_fn;
	hrtimer_start(&kq_hrtimer_timer, ktime_set(1000, 0), HRTIMER_MODE_REL);
	return 0;
}

static void __exit kq_hrtimer_exit(void)
{
	hrtimer_cancel(&kq_hrtimer_timer);
}

module_init(kq_hrtimer_init);
module_exit(kq_hrtimer_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kquiesce scenario: a pending hrtimer calling into the module");
