// SPDX-License-Identifier: GPL-2.0
/*
 * kq_notifier: a notifier_block in the module's data registered on the
 * reboot notifier chain; its notifier_call kq_notifier_call is module code.
 */
#include <linux/notifier.h>
#include <linux/reboot.h>
#include "kq_scenario.h"

static int kq_notifier_call(struct notifier_block *nb, unsigned long action, void *data)
{
	return NOTIFY_DONE;
}

static struct notifier_block kq_notifier_nb = {
	.notifier_call = kq_notifier_call,
};

static int kq_notifier_start(void)
{
	return register_reboot_notifier(&kq_notifier_nb);
}

static void kq_notifier_stop(void)
{
	unregister_reboot_notifier(&kq_notifier_nb);
}

KQ_SCENARIO(kq_notifier, "kquiesce scenario: a callback registered on the reboot notifier chain");
