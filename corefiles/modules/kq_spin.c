// SPDX-License-Identifier: GPL-2.0
/*
 * kq_spin: a kthread "kq_spin" that keeps running inside module text
 * (kq_spin_loop), so a dump catches a CPU whose PC is in the module.
 * It yields with cond_resched() so the (emulated) guest stays usable.
 */
#include <linux/module.h>
#include <linux/init.h>
#include <linux/kthread.h>
#include <linux/sched.h>
#include <linux/err.h>

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

static int __init kq_spin_init(void)
{
	kq_spin_task = kthread_run(kq_spin_thread, NULL, "kq_spin");
	if (IS_ERR(kq_spin_task))
		return PTR_ERR(kq_spin_task);
	return 0;
}

static void __exit kq_spin_exit(void)
{
	kthread_stop(kq_spin_task);
}

module_init(kq_spin_init);
module_exit(kq_spin_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kquiesce scenario: a kthread running in module text");
