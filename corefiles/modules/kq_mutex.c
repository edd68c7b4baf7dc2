// SPDX-License-Identifier: GPL-2.0
/*
 * kq_mutex: kthread "kq_mutex_owner" holds kq_mutex_lock (a mutex in the
 * module's data) while asleep; kthread "kq_mutex_waiter" blocks on it.
 */
#include <linux/module.h>
#include <linux/kthread.h>
#include <linux/mutex.h>
#include <linux/wait.h>
#include <linux/delay.h>
#include <linux/err.h>

static DEFINE_MUTEX(kq_mutex_lock);
static DECLARE_WAIT_QUEUE_HEAD(kq_mutex_wq);
static bool kq_mutex_release;
static struct task_struct *owner, *waiter;

static noinline int kq_mutex_hold(void *unused)
{
	mutex_lock(&kq_mutex_lock);
	wait_event_interruptible(kq_mutex_wq, READ_ONCE(kq_mutex_release));
	mutex_unlock(&kq_mutex_lock);
	while (!kthread_should_stop())
		msleep_interruptible(100);
	return 0;
}

static noinline int kq_mutex_wait(void *unused)
{
	mutex_lock(&kq_mutex_lock);
	mutex_unlock(&kq_mutex_lock);
	while (!kthread_should_stop())
		msleep_interruptible(100);
	return 0;
}

static int __init kq_mutex_init(void)
{
	owner = kthread_run(kq_mutex_hold, NULL, "kq_mutex_owner");
	if (IS_ERR(owner))
		return PTR_ERR(owner);
	msleep(100); /* the owner takes the lock first */
	waiter = kthread_run(kq_mutex_wait, NULL, "kq_mutex_waiter");
	if (IS_ERR(waiter)) {
		WRITE_ONCE(kq_mutex_release, true);
		wake_up_interruptible(&kq_mutex_wq);
		kthread_stop(owner);
		return PTR_ERR(waiter);
	}
	return 0;
}

static void __exit kq_mutex_exit(void)
{
	WRITE_ONCE(kq_mutex_release, true);
	wake_up_interruptible(&kq_mutex_wq);
	kthread_stop(waiter);
	kthread_stop(owner);
}

module_init(kq_mutex_init);
module_exit(kq_mutex_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kquiesce scenario: a module mutex held by a sleeping kthread, with a waiter");
