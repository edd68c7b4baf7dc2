// SPDX-License-Identifier: GPL-2.0
/*
 * kq_chardev: a misc device /dev/kq_chardev (/dev/kq_all in kq_all: it is
 * named for the module) whose file_operations are in the module; the
 * guest's init keeps it open in a process ("sleep 100000 < /dev/kq_chardev"),
 * which also holds a reference on the module (fops owner).
 */
#include <linux/miscdevice.h>
#include <linux/fs.h>
#include "kq_scenario.h"

static int kq_chardev_open(struct inode *inode, struct file *file)
{
	return 0;
}

static ssize_t kq_chardev_read(struct file *file, char __user *buf, size_t len, loff_t *off)
{
	return 0;
}

static const struct file_operations kq_chardev_fops = {
	.owner = THIS_MODULE,
	.open = kq_chardev_open,
	.read = kq_chardev_read,
	.llseek = noop_llseek,
};

static struct miscdevice kq_chardev_dev = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = KBUILD_MODNAME,
	.fops = &kq_chardev_fops,
};

static int kq_chardev_start(void)
{
	return misc_register(&kq_chardev_dev);
}

static void kq_chardev_stop(void)
{
	misc_deregister(&kq_chardev_dev);
}

KQ_SCENARIO(kq_chardev, "kquiesce scenario: a character device held open by a process");
