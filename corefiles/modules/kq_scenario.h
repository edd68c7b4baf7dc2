/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A scenario is one condition, made by a start/stop pair in its own kq_X.c.
 * Built alone, that file is the module kq_X: KQ_SCENARIO() gives it an init
 * and an exit calling the pair. kq_all.c includes the files with KQ_ALL
 * defined, which turns KQ_SCENARIO() off, and calls every pair itself.
 * Names that must not clash in kq_all are prefixed with the scenario's.
 */
#ifndef KQ_SCENARIO_H
#define KQ_SCENARIO_H

#include <linux/module.h>

#ifdef KQ_ALL
#define KQ_SCENARIO(name, description)
#else
#define KQ_SCENARIO(name, description)				\
	static int __init name##_init(void)			\
	{							\
		return name##_start();				\
	}							\
	static void __exit name##_exit(void)			\
	{							\
		name##_stop();					\
	}							\
	module_init(name##_init);				\
	module_exit(name##_exit);				\
	MODULE_LICENSE("GPL");					\
	MODULE_DESCRIPTION(description)
#endif

#endif
