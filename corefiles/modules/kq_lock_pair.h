/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The two kthreads of a lock scenario (kq_mutex, kq_rwsem): "NAME_owner"
 * runs hold(), which takes the lock and sleeps on *wq until *release;
 * "NAME_waiter", started once the owner holds it, runs wait(), which blocks
 * on the lock. Both then idle until kthread_stop().
 */
#ifndef KQ_LOCK_PAIR_H
#define KQ_LOCK_PAIR_H

#include <linux/kthread.h>
#include <linux/wait.h>
#include <linux/delay.h>
#include <linux/err.h>

struct kq_lock_pair {
	const char *name;
	int (*hold)(void *);
	int (*wait)(void *);
	wait_queue_head_t *wq;
	bool *release;
	struct task_struct *owner, *waiter;
};

static int kq_lock_pair_idle(void)
{
	while (!kthread_should_stop())
		msleep_interruptible(100);
	return 0;
}

static void kq_lock_pair_release(struct kq_lock_pair *p)
{
	WRITE_ONCE(*p->release, true);
	wake_up_interruptible(p->wq);
}

static int kq_lock_pair_start(struct kq_lock_pair *p)
{
	p->owner = kthread_run(p->hold, NULL, "%s_owner", p->name);
	if (IS_ERR(p->owner))
		return PTR_ERR(p->owner);
	msleep(100); /* the owner takes the lock first */
	p->waiter = kthread_run(p->wait, NULL, "%s_waiter", p->name);
	if (IS_ERR(p->waiter)) {
		kq_lock_pair_release(p);
		kthread_stop(p->owner);
		return PTR_ERR(p->waiter);
	}
	return 0;
}

static void kq_lock_pair_stop(struct kq_lock_pair *p)
{
	kq_lock_pair_release(p);
	kthread_stop(p->waiter);
	kthread_stop(p->owner);
}

/*
 * SCEN_start() and SCEN_stop() for KQ_SCENARIO(), over the pair of
 * SCEN_hold() and SCEN_wait(), SCEN_wq and SCEN_release.
 */
#define KQ_LOCK_PAIR(scen)						\
	static struct kq_lock_pair scen##_pair = {			\
		.name = #scen,						\
		.hold = scen##_hold,					\
		.wait = scen##_wait,					\
		.wq = &scen##_wq,					\
		.release = &scen##_release,				\
	};								\
	static int scen##_start(void)					\
	{								\
		return kq_lock_pair_start(&scen##_pair);		\
	}								\
	static void scen##_stop(void)					\
	{								\
		kq_lock_pair_stop(&scen##_pair);			\
	}

#endif
