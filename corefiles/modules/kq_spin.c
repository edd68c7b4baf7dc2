// SPDX-License-Identifier: GPL-2.0
/*
 * kq_spin: a kthread "kq_spin" that keeps running inside module text
 * (kq_spin_loop), so a dump catches a CPU whose PC is in the module.
 * It yields with cond_resched() so the (emulated) guest stays usable.
 */
#include <linux/kthread.h>
#include <linux/sched.h>
#include <linux/err.h>
#include "kq_scenario.h"

static struct task_struct *kq_spin_task;
/* Visible progress for a debugger; also keeps the loop from being optimised away. */
unsigned long kq_spin_count;

static noinline void kq_spin_loop(void)
{
	while (!kthread_should_stop()) {
		WRITE_ONCE(kq_spin_count, kq_spin_count + 1);
		cpu_relax();
		cond_resched();
	}
}

static int kq_spin_thread(void *unused)
{
	kq_spin_loop();
	return 0;
}

static int kq_spin_start(void)
{
	kq_spin_task = kthread_run(kq_spin_thread, NULL, "kq_spin");
	return PTR_ERR_OR_ZERO(kq_spin_task);
}

static void kq_spin_stop(void)
{
	kthread_stop(kq_spin_task);
}

KQ_SCENARIO(kq_spin, "kquiesce scenario: a kthread running in module text");
