// SPDX-License-Identifier: GPL-2.0
/*
 * kq_rwsem: kthread "kq_rwsem_owner" holds kq_rwsem_lock (an rw_semaphore in the
 * module's data) while asleep; kthread "kq_rwsem_waiter" blocks on it.
 */
#include <linux/module.h>
#include <linux/kthread.h>
#include <linux/rwsem.h>
#include <linux/wait.h>
#include <linux/delay.h>
#include <linux/err.h>

static DECLARE_RWSEM(kq_rwsem_lock);
static DECLARE_WAIT_QUEUE_HEAD(kq_rwsem_wq);
static bool kq_rwsem_release;
static struct task_struct *owner, *waiter;

static noinline int kq_rwsem_hold(void *unused)
{
	down_write(&kq_rwsem_lock);
	wait_event_interruptible(kq_rwsem_wq, READ_ONCE(kq_rwsem_release));
	up_write(&kq_rwsem_lock);
	while (!kthread_should_stop())
		msleep_interruptible(100);
	return 0;
}

static noinline int kq_rwsem_wait(void *unused)
{
	down_read(&kq_rwsem_lock);
	up_read(&kq_rwsem_lock);
	while (!kthread_should_stop())
		msleep_interruptible(100);
	return 0;
}

static int __init kq_rwsem_init(void)
{
	owner = kthread_run(kq_rwsem_hold, NULL, "kq_rwsem_owner");
	if (IS_ERR(owner))
		return PTR_ERR(owner);
	msleep(100); /* the owner takes the lock first */
	waiter = kthread_run(kq_rwsem_wait, NULL, "kq_rwsem_waiter");
	if (IS_ERR(waiter)) {
		WRITE_ONCE(kq_rwsem_release, true);
		wake_up_interruptible(&kq_rwsem_wq);
		kthread_stop(owner);
		return PTR_ERR(waiter);
	}
	return 0;
}

static void __exit kq_rwsem_exit(void)
{
	WRITE_ONCE(kq_rwsem_release, true);
	wake_up_interruptible(&kq_rwsem_wq);
	kthread_stop(waiter);
	kthread_stop(owner);
}

module_init(kq_rwsem_init);
module_exit(kq_rwsem_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kquiesce scenario: a module rw_semaphore held for writing by a sleeping kthread, with a reader waiting");
