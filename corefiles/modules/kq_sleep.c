// SPDX-License-Identifier: GPL-2.0
/*
 * kq_sleep: a kthread "kq_sleep" asleep in kq_sleep_wait() on a wait queue
 * head that lives in the module (kq_sleep_wq). Both its stack and its wait
 * channel point into the module.
 */
#include <linux/kthread.h>
#include <linux/sched.h>
#include <linux/wait.h>
#include <linux/err.h>
#include "kq_scenario.h"

static DECLARE_WAIT_QUEUE_HEAD(kq_sleep_wq);
static struct task_struct *kq_sleep_task;
static bool kq_sleep_wakeup;

static noinline int kq_sleep_wait(void)
{
	return wait_event_interruptible(kq_sleep_wq,
					READ_ONCE(kq_sleep_wakeup) ||
					kthread_should_stop());
}

static int kq_sleep_thread(void *unused)
{
	while (!kthread_should_stop())
		kq_sleep_wait();
	return 0;
}

static int kq_sleep_start(void)
{
	kq_sleep_task = kthread_run(kq_sleep_thread, NULL, "kq_sleep");
	return PTR_ERR_OR_ZERO(kq_sleep_task);
}

static void kq_sleep_stop(void)
{
	WRITE_ONCE(kq_sleep_wakeup, true);
	wake_up_interruptible(&kq_sleep_wq);
	kthread_stop(kq_sleep_task);
}

KQ_SCENARIO(kq_sleep, "kquiesce scenario: a kthread asleep on a module wait queue");
