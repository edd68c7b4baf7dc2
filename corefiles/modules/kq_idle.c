// SPDX-License-Identifier: GPL-2.0
/*
 * kq_idle: a module that holds nothing. No threads, timers, callbacks or
 * references: the analysis must call it SAFE.
 */
#include <linux/module.h>
#include <linux/init.h>

static int __init kq_idle_init(void)
{
	pr_info("kq_idle: loaded\n");
	return 0;
}

static void __exit kq_idle_exit(void)
{
	pr_info("kq_idle: unloaded\n");
}

module_init(kq_idle_init);
module_exit(kq_idle_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kquiesce scenario: a module that holds nothing");
