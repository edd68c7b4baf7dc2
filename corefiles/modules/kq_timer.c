// SPDX-License-Identifier: GPL-2.0
/*
 * kq_timer: a timer_list in the module's data, pending for 1000 s, whose
 * function kq_timer_fn is module code.
 */
#include <linux/timer.h>
#include <linux/jiffies.h>
#include "kq_scenario.h"

static struct timer_list kq_timer_list;

static void kq_timer_fn(struct timer_list *t)
{
	pr_info(KBUILD_MODNAME ": timer fired\n");
}

static int kq_timer_start(void)
{
	timer_setup(&kq_timer_list, kq_timer_fn, 0);
	mod_timer(&kq_timer_list, jiffies + 1000 * HZ);
	return 0;
}

static void kq_timer_stop(void)
{
	del_timer_sync(&kq_timer_list);
}

KQ_SCENARIO(kq_timer, "kquiesce scenario: a pending timer_list calling into the module");
