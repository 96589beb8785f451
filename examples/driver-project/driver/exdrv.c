// SPDX-License-Identifier: GPL-2.0-only
/*
 * exdrv: a small PCI driver for an FPGA card (10ee:7024), tested on barmap's
 * device posing as that card.  /dev/exdrv maps the card's BAR2; the
 * plant_oops parameter plants a NULL dereference in mmap(), which the tests
 * must catch.
 */
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/pci.h>

#define EXDRV_BAR	2

static bool plant_oops;
module_param(plant_oops, bool, 0444);
MODULE_PARM_DESC(plant_oops, "dereference NULL in mmap() (a bug for the tests to catch)");

static struct pci_dev *exdrv_pdev;

static int exdrv_mmap(struct file *filp, struct vm_area_struct *vma)
{
	if (plant_oops)
		*(volatile int *)NULL = 0;
	if (!(vma->vm_flags & VM_MAYSHARE))
		return -EINVAL;
	vma->vm_page_prot = pgprot_noncached(vma->vm_page_prot);
	return vm_iomap_memory(vma, pci_resource_start(exdrv_pdev, EXDRV_BAR),
			       pci_resource_len(exdrv_pdev, EXDRV_BAR));
}

static const struct file_operations exdrv_fops = {
	.owner = THIS_MODULE,
	.mmap = exdrv_mmap,
};

static struct miscdevice exdrv_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "exdrv",
	.fops = &exdrv_fops,
};

static int exdrv_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	int ret;

	if (exdrv_pdev)
		return -EBUSY;	/* one card */
	ret = pcim_enable_device(pdev);
	if (ret)
		return ret;
	if (!(pci_resource_flags(pdev, EXDRV_BAR) & IORESOURCE_MEM))
		return dev_err_probe(&pdev->dev, -ENODEV, "no memory BAR%d\n", EXDRV_BAR);
	ret = pcim_iomap_regions(pdev, BIT(EXDRV_BAR), "exdrv");	/* claims it */
	if (ret)
		return ret;
	exdrv_pdev = pdev;
	ret = misc_register(&exdrv_misc);
	if (ret) {
		exdrv_pdev = NULL;
		return ret;
	}
	dev_info(&pdev->dev, "exdrv: BAR%d %pR\n", EXDRV_BAR, &pdev->resource[EXDRV_BAR]);
	return 0;
}

static void exdrv_remove(struct pci_dev *pdev)
{
	misc_deregister(&exdrv_misc);
	exdrv_pdev = NULL;
}

static const struct pci_device_id exdrv_ids[] = {
	{ PCI_DEVICE(0x10ee, 0x7024) },
	{ }
};
MODULE_DEVICE_TABLE(pci, exdrv_ids);

static struct pci_driver exdrv_driver = {
	.name = "exdrv",
	.id_table = exdrv_ids,
	.probe = exdrv_probe,
	.remove = exdrv_remove,
};
module_pci_driver(exdrv_driver);

MODULE_DESCRIPTION("example driver tested on the barmap device");
MODULE_LICENSE("GPL");
