// SPDX-License-Identifier: GPL-2.0
/*
 * kq_timer: a timer_list in the module's data, pending for 1000 s, whose
 * function kq_timer_fn is module code.
 */
#include <linux/module.h>
#include <linux/timer.h>
#include <linux/jiffies.h>

static struct timer_list kq_timer_list;

static void kq_timer_fn(struct timer_list *t)
{
	pr_info("kq_timer: fired\n");
}

static int __init kq_timer_init(void)
{
	timer_setup(&kq_timer_list, kq_timer_fn, 0);
	mod_timer(&kq_timer_list, jiffies + 1000 * HZ);
	return 0;
}

static void __exit kq_timer_exit(void)
{
	del_timer_sync(&kq_timer_list);
}

module_init(kq_timer_init);
module_exit(kq_timer_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kquiesce scenario: a pending timer_list calling into the module");
