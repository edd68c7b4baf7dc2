// SPDX-License-Identifier: GPL-2.0
/*
 * kq_all: every in-use condition at once, from the single scenarios' own
 * sources (included with KQ_ALL defined: each file is then only its
 * start/stop pair): a kthread asleep in the module (kq_sleep), a mutex and
 * an rw_semaphore held with waiters, a timer, an hrtimer, a delayed work
 * item, a running work item, a reboot notifier, an IRQ handler, a misc
 * device /dev/kq_all (held open by the guest's init), an RCU callback kept
 * pending and a tasklet kept scheduled. The last two block RCU grace
 * periods and take a CPU (the one before kq_tasklet's): not in the
 * standard guest.
 */
#define KQ_ALL
#define KQ_TASKLET_CPU_FROM_LAST 1

#include "kq_sleep.c"
#include "kq_mutex.c"
#include "kq_rwsem.c"
#include "kq_timer.c"
#include "kq_hrtimer.c"
#include "kq_work.c"
#include "kq_workrun.c"
#include "kq_notifier.c"
#include "kq_irq.c"
#include "kq_chardev.c"
#include "kq_rcu.c"
#include "kq_tasklet.c"

struct kq_all_part {
	int (*start)(void);
	void (*stop)(void);
};

/* In start order; the tasklet last, since it takes a CPU for good. */
static const struct kq_all_part kq_all_parts[] = {
	{ kq_sleep_start, kq_sleep_stop },
	{ kq_mutex_start, kq_mutex_stop },
	{ kq_rwsem_start, kq_rwsem_stop },
	{ kq_timer_start, kq_timer_stop },
	{ kq_hrtimer_start, kq_hrtimer_stop },
	{ kq_work_start, kq_work_stop },
	{ kq_workrun_start, kq_workrun_stop },
	{ kq_notifier_start, kq_notifier_stop },
	{ kq_irq_start, kq_irq_stop },
	{ kq_chardev_start, kq_chardev_stop },
	{ kq_rcu_start, kq_rcu_stop },
	{ kq_tasklet_start, kq_tasklet_stop },
};

static void kq_all_stop(int started)
{
	while (started > 0)
		kq_all_parts[--started].stop();
}

static int __init kq_all_init(void)
{
	int i, ret;

	for (i = 0; i < ARRAY_SIZE(kq_all_parts); i++) {
		ret = kq_all_parts[i].start();
		if (ret) {
			kq_all_stop(i);
			return ret;
		}
	}
	return 0;
}

static void __exit kq_all_exit(void)
{
	kq_all_stop(ARRAY_SIZE(kq_all_parts));
}

module_init(kq_all_init);
module_exit(kq_all_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kquiesce scenario: every in-use condition at once (takes a CPU, blocks RCU)");
