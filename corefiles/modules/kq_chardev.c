// SPDX-License-Identifier: GPL-2.0
/*
 * kq_chardev: a misc device /dev/kq_chardev whose file_operations are in
 * the module; the guest's init keeps it open in a process ("sleep 100000 <
 * /dev/kq_chardev"), which also holds a reference on the module (fops owner).
 */
#include <linux/module.h>
#include <linux/miscdevice.h>
#include <linux/fs.h>

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
	.name = "kq_chardev",
	.fops = &kq_chardev_fops,
};

static int __init kq_chardev_init(void)
{
	return misc_register(&kq_chardev_dev);
}

static void __exit kq_chardev_exit(void)
{
	misc_deregister(&kq_chardev_dev);
}

module_init(kq_chardev_init);
module_exit(kq_chardev_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kquiesce scenario: a character device held open by a process");
