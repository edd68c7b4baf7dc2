// SPDX-License-Identifier: GPL-2.0
/*
 * kq_many: n kthreads "kq_many/0" ... "kq_many/<n-1>" (module parameter n,
 * default 2000), each asleep in kq_many_wait() on kq_many_wq, a wait queue
 * head in the module: n stacks with a module frame, for timing unwinders
 * (bench/unwind). Not part of the standard dump set (scripts/lab prepare);
 * `scripts/lab prepare-bench` boots it.
 */
#include <linux/module.h>
#include <linux/init.h>
#include <linux/kthread.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/wait.h>
#include <linux/err.h>

static int n = 2000;
module_param(n, int, 0444);
MODULE_PARM_DESC(n, "number of kthreads (default 2000)");

static DECLARE_WAIT_QUEUE_HEAD(kq_many_wq);
static struct task_struct **kq_many_tasks;
static int kq_many_started;

static noinline int kq_many_wait(void)
{
	return wait_event_interruptible(kq_many_wq, kthread_should_stop());
}

static int kq_many_thread(void *unused)
{
	while (!kthread_should_stop())
		kq_many_wait();
	return 0;
}

/* kthread_stop() wakes each thread itself: nothing else ever wakes them. */
static void kq_many_stop(void)
{
	while (kq_many_started > 0)
		kthread_stop(kq_many_tasks[--kq_many_started]);
	kvfree(kq_many_tasks);
}

static int __init kq_many_init(void)
{
	struct task_struct *t;

	if (n < 1)
		return -EINVAL;
	kq_many_tasks = kvcalloc(n, sizeof(*kq_many_tasks), GFP_KERNEL);
	if (!kq_many_tasks)
		return -ENOMEM;
	while (kq_many_started < n) {
		t = kthread_run(kq_many_thread, NULL, "kq_many/%d", kq_many_started);
		if (IS_ERR(t)) {
			pr_err("kq_many: kthread %d: %ld\n", kq_many_started, PTR_ERR(t));
			kq_many_stop();
			return PTR_ERR(t);
		}
		kq_many_tasks[kq_many_started++] = t;
	}
	return 0;
}

static void __exit kq_many_exit(void)
{
	kq_many_stop();
}

module_init(kq_many_init);
module_exit(kq_many_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kquiesce scenario: many kthreads asleep in the module (unwinder benchmark)");
