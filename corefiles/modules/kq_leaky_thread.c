// SPDX-License-Identifier: GPL-2.0
/*
 * kq_leaky_thread: an unload crash. A kthread "kq_leaky_thread" runs
 * kq_leaky_thread_fn (module text), sleeping 100 ms at a time in msleep().
 * The module pins itself while the thread runs (a plain rmmod refuses), and
 * its exit forgets kthread_stop: after a forced unload (rmmod -f) msleep
 * returns into freed text. Not in any standard guest (scripts/lab's
 * EXTRA_SCENARIOS); `scripts/lab prepare` makes crash-kq_leaky_thread.elf.
 */
#include <linux/kthread.h>
#include <linux/delay.h>
#include <linux/err.h>
#include "kq_scenario.h"

static struct task_struct *kq_leaky_thread_task;
static unsigned long kq_leaky_thread_rounds;

static int kq_leaky_thread_fn(void *unused)
{
	while (!kthread_should_stop()) {
		msleep(100);
		WRITE_ONCE(kq_leaky_thread_rounds, kq_leaky_thread_rounds + 1);
	}
	return 0;
}

static int kq_leaky_thread_start(void)
{
	kq_leaky_thread_task = kthread_run(kq_leaky_thread_fn, NULL, "kq_leaky_thread");
	if (IS_ERR(kq_leaky_thread_task))
		return PTR_ERR(kq_leaky_thread_task);
	__module_get(THIS_MODULE);
	pr_info(KBUILD_MODNAME ": thread started\n");
	return 0;
}

static void kq_leaky_thread_stop(void)
{
	/* The bug: no kthread_stop(kq_leaky_thread_task). */
	pr_info(KBUILD_MODNAME ": stopping\n");
}

KQ_SCENARIO(kq_leaky_thread, "kquiesce crash scenario: a kthread left running by the module's exit");
