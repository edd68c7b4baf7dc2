// SPDX-License-Identifier: GPL-2.0
/*
 * kq_irq: the handler kq_irq_handler requested (named for the module) on an
 * interrupt nothing ever raises: a descriptor of the module's own from
 * __irq_alloc_descs(), with dummy_irq_chip and handle_simple_irq. Its owner
 * is NULL, not THIS_MODULE as irq_alloc_desc() would make it: request_irq()
 * takes a reference on the owner, and the module could never be unloaded.
 */
#include <linux/interrupt.h>
#include <linux/irq.h>
#include "kq_scenario.h"

static int kq_irq_num; /* also the handler's dev_id */

static irqreturn_t kq_irq_handler(int irq, void *dev_id)
{
	return IRQ_HANDLED;
}

static int kq_irq_start(void)
{
	int irq, ret;

	irq = __irq_alloc_descs(-1, 0, 1, NUMA_NO_NODE, NULL, NULL);
	if (irq < 0)
		return irq;
	irq_set_chip_and_handler(irq, &dummy_irq_chip, handle_simple_irq);
	ret = request_irq(irq, kq_irq_handler, 0, KBUILD_MODNAME, &kq_irq_num);
	if (ret) {
		irq_free_desc(irq);
		return ret;
	}
	kq_irq_num = irq;
	pr_info(KBUILD_MODNAME ": kq_irq_handler on IRQ %d\n", irq);
	return 0;
}

static void kq_irq_stop(void)
{
	free_irq(kq_irq_num, &kq_irq_num);
	irq_free_desc(kq_irq_num);
}

KQ_SCENARIO(kq_irq, "kquiesce scenario: an interrupt handler in the module");
