// SPDX-License-Identifier: GPL-2.0
/*
 * kq_stale_notifier: an unload crash. A notifier_block in kmalloc'ed memory,
 * calling kq_stale_notifier_call (module text), is registered on the reboot
 * notifier chain. The module pins itself while registered (a plain rmmod
 * refuses), and its exit forgets unregister_reboot_notifier: after a forced
 * unload (rmmod -f), a reboot calls the chain, and the chain calls into
 * freed text. Not in any standard guest (scripts/lab's EXTRA_SCENARIOS);
 * `scripts/lab prepare` makes crash-kq_stale_notifier.elf.
 */
#include <linux/notifier.h>
#include <linux/reboot.h>
#include <linux/slab.h>
#include "kq_scenario.h"

static struct notifier_block *kq_stale_notifier_nb;

static int kq_stale_notifier_call(struct notifier_block *nb, unsigned long action, void *data)
{
	pr_info(KBUILD_MODNAME ": reboot notified\n");
	return NOTIFY_DONE;
}

static int kq_stale_notifier_start(void)
{
	int err;

	kq_stale_notifier_nb = kzalloc(sizeof(*kq_stale_notifier_nb), GFP_KERNEL);
	if (!kq_stale_notifier_nb)
		return -ENOMEM;
	kq_stale_notifier_nb->notifier_call = kq_stale_notifier_call;
	err = register_reboot_notifier(kq_stale_notifier_nb);
	if (err) {
		kfree(kq_stale_notifier_nb);
		return err;
	}
	__module_get(THIS_MODULE);
	pr_info(KBUILD_MODNAME ": reboot notifier registered\n");
	return 0;
}

static void kq_stale_notifier_stop(void)
{
	/* The bug: no unregister_reboot_notifier(kq_stale_notifier_nb), no kfree. */
	pr_info(KBUILD_MODNAME ": stopping\n");
}

KQ_SCENARIO(kq_stale_notifier, "kquiesce crash scenario: a notifier left registered by the module's exit");
