// SPDX-License-Identifier: GPL-2.0
/*
 * kq_mutex: kthread "kq_mutex_owner" holds kq_mutex_lock (a mutex in the
 * module's data) while asleep; kthread "kq_mutex_waiter" blocks on it.
 */
#include <linux/mutex.h>
#include "kq_lock_pair.h"
#include "kq_scenario.h"

static DEFINE_MUTEX(kq_mutex_lock);
static DECLARE_WAIT_QUEUE_HEAD(kq_mutex_wq);
static bool kq_mutex_release;

static noinline int kq_mutex_hold(void *unused)
{
	mutex_lock(&kq_mutex_lock);
	wait_event_interruptible(kq_mutex_wq, READ_ONCE(kq_mutex_release));
	mutex_unlock(&kq_mutex_lock);
	return kq_lock_pair_idle();
}

static noinline int kq_mutex_wait(void *unused)
{
	mutex_lock(&kq_mutex_lock);
	mutex_unlock(&kq_mutex_lock);
	return kq_lock_pair_idle();
}

KQ_LOCK_PAIR(kq_mutex)
KQ_SCENARIO(kq_mutex, "kquiesce scenario: a module mutex held by a sleeping kthread, with a waiter");
