// SPDX-License-Identifier: GPL-2.0
/*
 * kq_rwsem: kthread "kq_rwsem_owner" holds kq_rwsem_lock (an rw_semaphore in the
 * module's data) for writing while asleep; kthread "kq_rwsem_waiter" blocks on
 * it for reading.
 */
#include <linux/rwsem.h>
#include "kq_lock_pair.h"
#include "kq_scenario.h"

static DECLARE_RWSEM(kq_rwsem_lock);
static DECLARE_WAIT_QUEUE_HEAD(kq_rwsem_wq);
static bool kq_rwsem_release;

static noinline int kq_rwsem_hold(void *unused)
{
	down_write(&kq_rwsem_lock);
	wait_event_interruptible(kq_rwsem_wq, READ_ONCE(kq_rwsem_release));
	up_write(&kq_rwsem_lock);
	return kq_lock_pair_idle();
}

static noinline int kq_rwsem_wait(void *unused)
{
	down_read(&kq_rwsem_lock);
	up_read(&kq_rwsem_lock);
	return kq_lock_pair_idle();
}

KQ_LOCK_PAIR(kq_rwsem)
KQ_SCENARIO(kq_rwsem, "kquiesce scenario: a module rw_semaphore held for writing by a sleeping kthread, with a reader waiting");
