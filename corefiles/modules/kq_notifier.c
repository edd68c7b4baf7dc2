// SPDX-License-Identifier: GPL-2.0
/*
 * kq_notifier: a notifier_block in the module's data registered on the
 * reboot notifier chain; its notifier_call kq_notifier_call is module code.
 */
#include <linux/module.h>
#include <linux/notifier.h>
#include <linux/reboot.h>

static int kq_notifier_call(struct notifier_block *nb, unsigned long action, void *data)
{
	return NOTIFY_DONE;
}

static struct notifier_block kq_notifier_nb = {
	.notifier_call = kq_notifier_call,
};

static int __init kq_notifier_init(void)
{
	return register_reboot_notifier(&kq_notifier_nb);
}

static void __exit kq_notifier_exit(void)
{
	unregister_reboot_notifier(&kq_notifier_nb);
}

module_init(kq_notifier_init);
module_exit(kq_notifier_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kquiesce scenario: a callback registered on the reboot notifier chain");
