// SPDX-License-Identifier: GPL-2.0
/*
 * kq_work: a delayed_work in the module's data, queued on the system
 * workqueue with a 1000 s delay (its timer is pending), whose function
 * kq_work_fn is module code.
 */
#include <linux/module.h>
#include <linux/workqueue.h>
#include <linux/jiffies.h>

static void kq_work_fn(struct work_struct *w)
{
	pr_info("kq_work: ran\n");
}

static DECLARE_DELAYED_WORK(kq_work_item, kq_work_fn);

static int __init kq_work_init(void)
{
	schedule_delayed_work(&kq_work_item, 1000 * HZ);
	return 0;
}

static void __exit kq_work_exit(void)
{
	cancel_delayed_work_sync(&kq_work_item);
}

module_init(kq_work_init);
module_exit(kq_work_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kquiesce scenario: a pending delayed work item calling into the module");
