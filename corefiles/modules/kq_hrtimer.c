// SPDX-License-Identifier: GPL-2.0
/*
 * kq_hrtimer: an hrtimer in the module's data, armed for 1000 s, whose
 * function kq_hrtimer_fn is module code.
 */
#include <linux/hrtimer.h>
#include <linux/ktime.h>
#include "kq_scenario.h"

static struct hrtimer kq_hrtimer_timer;

static enum hrtimer_restart kq_hrtimer_fn(struct hrtimer *t)
{
	pr_info(KBUILD_MODNAME ": hrtimer fired\n");
	return HRTIMER_NORESTART;
}

static int kq_hrtimer_start(void)
{
	hrtimer_init(&kq_hrtimer_timer, CLOCK_MONOTONIC, HRTIMER_MODE_REL);
	kq_hrtimer_timer.function = kq_hrtimer_fn;
	hrtimer_start(&kq_hrtimer_timer, ktime_set(1000, 0), HRTIMER_MODE_REL);
	return 0;
}

static void kq_hrtimer_stop(void)
{
	hrtimer_cancel(&kq_hrtimer_timer);
}

KQ_SCENARIO(kq_hrtimer, "kquiesce scenario: a pending hrtimer calling into the module");
