// SPDX-License-Identifier: GPL-2.0
/*
 * kq_dep_a: exports kq_dep_a_value(), which kq_dep_b uses: while kq_dep_b
 * is loaded the kernel refuses to unload kq_dep_a (a holder).
 */
#include <linux/module.h>

int kq_dep_a_value(void)
{
	return 42;
}
EXPORT_SYMBOL_GPL(kq_dep_a_value);

static int __init kq_dep_a_init(void)
{
	return 0;
}

static void __exit kq_dep_a_exit(void)
{
}

module_init(kq_dep_a_init);
module_exit(kq_dep_a_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kquiesce scenario: a module another module depends on");
