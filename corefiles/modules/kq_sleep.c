// SPDX-License-Identifier: GPL-2.0
/*
 * kq_sleep: a kthread "kq_sleep" asleep in kq_sleep_wait() on a wait queue
 * head that lives in the module (kq_sleep_wq). Both its stack and its wait
 * channel point into the module.
 */
#include <linux/module.h>
#include <linux/init.h>
#include <linux/kthread.h>
#include <linux/sched.h>
#include <linux/wait.h>
#include <linux/err.h>

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

static int __init kq_sleep_init(void)
{
	kq_sleep_task = kthread_run(kq_sleep_thread, NULL, "kq_sleep");
	if (IS_ERR(kq_sleep_task))
		return PTR_ERR(kq_sleep_task);
	return 0;
}

static void __exit kq_sleep_exit(void)
{
	WRITE_ONCE(kq_sleep_wakeup, true);
	wake_up_interruptible(&kq_sleep_wq);
	kthread_stop(kq_sleep_task);
}

module_init(kq_sleep_init);
module_exit(kq_sleep_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kquiesce scenario: a kthread asleep on a module wait queue");
