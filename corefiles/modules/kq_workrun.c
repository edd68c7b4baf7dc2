// SPDX-License-Identifier: GPL-2.0
/*
 * kq_workrun: a work item whose function kq_workrun_fn is running: a
 * kworker is asleep inside it (on a module wait queue) until unload.
 */
#include <linux/workqueue.h>
#include <linux/wait.h>
#include "kq_scenario.h"

static DECLARE_WAIT_QUEUE_HEAD(kq_workrun_wq);
static bool kq_workrun_done;

static noinline void kq_workrun_fn(struct work_struct *w)
{
	wait_event_interruptible(kq_workrun_wq, READ_ONCE(kq_workrun_done));
}

static DECLARE_WORK(kq_workrun_item, kq_workrun_fn);

static int kq_workrun_start(void)
{
	schedule_work(&kq_workrun_item);
	return 0;
}

static void kq_workrun_stop(void)
{
	WRITE_ONCE(kq_workrun_done, true);
	wake_up_interruptible(&kq_workrun_wq);
	flush_work(&kq_workrun_item);
}

KQ_SCENARIO(kq_workrun, "kquiesce scenario: a work function running (asleep) in the module");
