// SPDX-License-Identifier: GPL-2.0
/* kq_dep_b: uses kq_dep_a_value() from kq_dep_a (loaded before it). */
#include <linux/module.h>

int kq_dep_a_value(void);

static int __init kq_dep_b_init(void)
{
	pr_info("kq_dep_b: kq_dep_a says %d\n", kq_dep_a_value());
	return 0;
}

static void __exit kq_dep_b_exit(void)
{
}

module_init(kq_dep_b_init);
module_exit(kq_dep_b_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kquiesce scenario: a module that depends on kq_dep_a");
