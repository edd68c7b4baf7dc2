// SPDX-License-Identifier: GPL-2.0
/*
 * kq_nested: a kthread "kq_nested" whose stack is
 *   kq_nested_thread -> kq_nested_run (module) -> sort()/sort_r() (kernel)
 *   -> kq_nested_cmp (module callback) -> schedule()
 * so a module frame sits *below* kernel frames: an unwinder that stops at
 * the first kernel frame, or only checks the PC, misses it.
 */
#include <linux/kthread.h>
#include <linux/sched.h>
#include <linux/sort.h>
#include <linux/wait.h>
#include <linux/err.h>
#include "kq_scenario.h"

static DECLARE_WAIT_QUEUE_HEAD(kq_nested_wq);
static struct task_struct *kq_nested_task;
static bool kq_nested_release;
static int kq_nested_calls;
static int kq_nested_data[8] = { 7, 3, 5, 1, 8, 2, 6, 4 };
/* Result of the sort, so kq_nested_run does work after sort() returns. */
int kq_nested_sum;

static noinline int kq_nested_cmp(const void *a, const void *b)
{
	/* The first comparison sleeps, with sort() on the stack above us. */
	if (kq_nested_calls++ == 0)
		wait_event_interruptible(kq_nested_wq,
					 READ_ONCE(kq_nested_release) ||
					 kthread_should_stop());
	return *(const int *)a - *(const int *)b;
}

static noinline int kq_nested_run(void)
{
	int i, sum = 0;

	sort(kq_nested_data, ARRAY_SIZE(kq_nested_data),
	     sizeof(kq_nested_data[0]), kq_nested_cmp, NULL);
	for (i = 0; i < ARRAY_SIZE(kq_nested_data); i++)
		sum = sum * 10 + kq_nested_data[i];
	WRITE_ONCE(kq_nested_sum, sum);
	return sum;
}

static int kq_nested_thread(void *unused)
{
	kq_nested_run();
	/* Stay alive until kthread_stop(): a kthread must not exit on its own here. */
	while (!kthread_should_stop())
		wait_event_interruptible(kq_nested_wq, kthread_should_stop());
	return 0;
}

static int kq_nested_start(void)
{
	kq_nested_task = kthread_run(kq_nested_thread, NULL, "kq_nested");
	return PTR_ERR_OR_ZERO(kq_nested_task);
}

static void kq_nested_stop(void)
{
	WRITE_ONCE(kq_nested_release, true);
	wake_up_interruptible(&kq_nested_wq);
	kthread_stop(kq_nested_task);
}

KQ_SCENARIO(kq_nested, "kquiesce scenario: a module frame below kernel frames");
