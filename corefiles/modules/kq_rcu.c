// SPDX-License-Identifier: GPL-2.0
/*
 * kq_rcu: an RCU callback, kq_rcu_free_cb, kept pending: kthread "kq_rcu"
 * queues it with call_rcu() inside an RCU read-side critical section and
 * sleeps in that section until kthread_stop(), so no grace period can end
 * (the Debian kernel has PREEMPT_RCU, where a reader may block). Sleeping
 * there is a voluntary context switch, which the kernel warns of once:
 * "Voluntary context switch within RCU read-side critical section!" in the
 * console is expected. (A preempted reader would not warn, but it stays
 * preempted only while something else holds its CPU for good.) No grace
 * period ends anywhere meanwhile: not in the standard guest. On stop,
 * rcu_barrier() waits for the callback before the module goes.
 */
#include <linux/rcupdate.h>
#include <linux/kthread.h>
#include <linux/completion.h>
#include <linux/slab.h>
#include <linux/wait.h>
#include <linux/err.h>
#include "kq_scenario.h"

struct kq_rcu_obj {
	int value;
	struct rcu_head rcu;
};

static DECLARE_WAIT_QUEUE_HEAD(kq_rcu_wq);
static struct task_struct *kq_rcu_task;
static DECLARE_COMPLETION(kq_rcu_queued);

static void kq_rcu_free_cb(struct rcu_head *head)
{
	kfree(container_of(head, struct kq_rcu_obj, rcu));
}

static noinline void kq_rcu_read(struct kq_rcu_obj *obj)
{
	rcu_read_lock();
	call_rcu(&obj->rcu, kq_rcu_free_cb);
	complete(&kq_rcu_queued);
	wait_event_interruptible(kq_rcu_wq, kthread_should_stop());
	rcu_read_unlock();
}

static int kq_rcu_thread(void *obj)
{
	kq_rcu_read(obj);
	return 0;
}

static int kq_rcu_start(void)
{
	struct kq_rcu_obj *obj = kzalloc(sizeof(*obj), GFP_KERNEL);

	if (!obj)
		return -ENOMEM;
	kq_rcu_task = kthread_run(kq_rcu_thread, obj, "kq_rcu");
	if (IS_ERR(kq_rcu_task)) {
		kfree(obj);
		return PTR_ERR(kq_rcu_task);
	}
	wait_for_completion(&kq_rcu_queued);
	return 0;
}

static void kq_rcu_stop(void)
{
	kthread_stop(kq_rcu_task);
	rcu_barrier();
}

KQ_SCENARIO(kq_rcu, "kquiesce scenario: an RCU callback kept pending by a blocked reader");
