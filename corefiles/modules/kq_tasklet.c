// SPDX-License-Identifier: GPL-2.0
/*
 * kq_tasklet: the tasklet kq_tasklet_tl, function kq_tasklet_fn, kept
 * scheduled. A scheduled tasklet normally runs at once, so a kthread
 * "kq_tasklet" bound to one CPU disables bottom halves, schedules it there
 * (on that CPU's tasklet_vec) and halts the CPU with interrupts enabled
 * until kthread_stop(): interrupts still run on that CPU, softirqs cannot
 * (nor is ksoftirqd woken), so the tasklet stays queued. On stop the thread
 * enables bottom halves again and the tasklet runs.
 *
 * The CPU does nothing else meanwhile: RCU grace periods cannot end, that
 * CPU's kworkers starve, and soft-lockup and RCU-stall warnings follow
 * after ~20 s. Not in the standard guest. It takes the last online CPU
 * (kq_all the one before, so both fit in one guest) and refuses CPU 0.
 */
#include <linux/interrupt.h>
#include <linux/irqflags.h>
#include <linux/kthread.h>
#include <linux/completion.h>
#include <linux/cpumask.h>
#include <linux/err.h>
#include "kq_scenario.h"

#ifndef KQ_TASKLET_CPU_FROM_LAST
#define KQ_TASKLET_CPU_FROM_LAST 0
#endif

static struct tasklet_struct kq_tasklet_tl;
static struct task_struct *kq_tasklet_task;
static DECLARE_COMPLETION(kq_tasklet_queued);

static void kq_tasklet_fn(struct tasklet_struct *t)
{
	pr_info(KBUILD_MODNAME ": tasklet ran\n");
}

static noinline void kq_tasklet_hold(void)
{
	local_bh_disable();
	tasklet_schedule(&kq_tasklet_tl);
	complete(&kq_tasklet_queued);
	for (;;) {
		local_irq_disable();
		if (kthread_should_stop())
			break;
		safe_halt(); /* sti; hlt: the next interrupt (the tick at worst) ends it */
	}
	local_irq_enable();
	local_bh_enable(); /* runs the tasklet */
}

static int kq_tasklet_thread(void *unused)
{
	kq_tasklet_hold();
	return 0;
}

static int kq_tasklet_start(void)
{
	int cpu = num_online_cpus() - 1 - KQ_TASKLET_CPU_FROM_LAST;

	if (cpu < 1 || !cpu_online(cpu)) {
		pr_err(KBUILD_MODNAME ": the tasklet takes a CPU: needs %d online CPUs\n",
		       KQ_TASKLET_CPU_FROM_LAST + 2);
		return -ENODEV;
	}
	tasklet_setup(&kq_tasklet_tl, kq_tasklet_fn);
	kq_tasklet_task = kthread_create(kq_tasklet_thread, NULL, "kq_tasklet");
	if (IS_ERR(kq_tasklet_task))
		return PTR_ERR(kq_tasklet_task);
	kthread_bind(kq_tasklet_task, cpu);
	wake_up_process(kq_tasklet_task);
	wait_for_completion(&kq_tasklet_queued);
	pr_info(KBUILD_MODNAME ": tasklet kept scheduled on CPU %d\n", cpu);
	return 0;
}

static void kq_tasklet_stop(void)
{
	kthread_stop(kq_tasklet_task);
	tasklet_kill(&kq_tasklet_tl);
}

KQ_SCENARIO(kq_tasklet, "kquiesce scenario: a tasklet kept scheduled (takes a CPU)");
