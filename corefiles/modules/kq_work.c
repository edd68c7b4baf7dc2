// SPDX-License-Identifier: GPL-2.0
/*
 * kq_work: a delayed_work in the module's data, queued on the system
 * workqueue with a 1000 s delay (its timer is pending), whose function
 * kq_work_fn is module code.
 */
#include <linux/workqueue.h>
#include <linux/jiffies.h>
#include "kq_scenario.h"

static void kq_work_fn(struct work_struct *w)
{
	pr_info(KBUILD_MODNAME ": work ran\n");
}

static DECLARE_DELAYED_WORK(kq_work_item, kq_work_fn);

static int kq_work_start(void)
{
	schedule_delayed_work(&kq_work_item, 1000 * HZ);
	return 0;
}

static void kq_work_stop(void)
{
	cancel_delayed_work_sync(&kq_work_item);
}

KQ_SCENARIO(kq_work, "kquiesce scenario: a pending delayed work item calling into the module");
