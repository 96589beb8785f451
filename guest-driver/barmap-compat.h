/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * barmap: the differences between the kernels the driver builds against.
 *
 * Every LINUX_VERSION_CODE test of the driver lives here, nowhere else.
 * Tested with Debian 12's 6.1 and Debian 13's 6.12.
 */
#ifndef BARMAP_COMPAT_H
#define BARMAP_COMPAT_H

#include <linux/device.h>
#include <linux/huge_mm.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/version.h>

/*
 * PMD mappings of a 2 MiB aligned region from .huge_fault, where the kernel
 * maps huge PFNs (6.12 added it for vfio-pci; 6.17 dropped pfn_t).
 */
#if defined(CONFIG_ARCH_SUPPORTS_PMD_PFNMAP) && \
	LINUX_VERSION_CODE >= KERNEL_VERSION(6, 12, 0) && \
	LINUX_VERSION_CODE < KERNEL_VERSION(6, 17, 0)
#define BARMAP_HUGE_FAULT
#include <linux/pfn_t.h>
#endif

/*
 * The file and VMA operations that map PMDs: the function where the kernel
 * maps huge PFNs, NULL elsewhere (6.1's .huge_fault takes another type).
 */
#ifdef BARMAP_HUGE_FAULT
#define barmap_huge_op(fn)		(fn)
#else
#define barmap_huge_op(fn)		NULL
#endif

/* one PMD of a huge PFN where the kernel maps them, else back to PTEs */
static inline vm_fault_t barmap_vmf_insert_pfn_pmd(struct vm_fault *vmf,
						   unsigned long pfn,
						   bool write)
{
#ifdef BARMAP_HUGE_FAULT
	return vmf_insert_pfn_pmd(vmf, __pfn_to_pfn_t(pfn, PFN_DEV), write);
#else
	return VM_FAULT_FALLBACK;
#endif
}

/*
 * thp_get_unmapped_area(), for the get_unmapped_area that barmap_huge_op()
 * installs only where PMDs map (without THP it is not even a function).
 */
static inline unsigned long
barmap_thp_get_unmapped_area(struct file *filp, unsigned long addr,
			     unsigned long len, unsigned long pgoff,
			     unsigned long flags)
{
#ifdef BARMAP_HUGE_FAULT
	return thp_get_unmapped_area(filp, addr, len, pgoff, flags);
#else
	return -ENODEV;		/* never installed */
#endif
}

/* 6.4 dropped class_create()'s owner */
static inline struct class *barmap_class_create(const char *name)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0)
	return class_create(name);
#else
	return class_create(THIS_MODULE, name);
#endif
}

/* 6.8 renamed PCI_IRQ_LEGACY */
#ifdef PCI_IRQ_INTX
#define BARMAP_PCI_IRQ_INTX		PCI_IRQ_INTX
#else
#define BARMAP_PCI_IRQ_INTX		PCI_IRQ_LEGACY
#endif

/* 6.3 made vm_flags read-only behind vm_flags_set() */
static inline void barmap_vm_flags_set(struct vm_area_struct *vma,
				       vm_flags_t flags)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
	vm_flags_set(vma, flags);
#else
	vma->vm_flags |= flags;
#endif
}

/* per-VMA locks: 6.4 and later (an empty stub without CONFIG_PER_VMA_LOCK) */
static inline void barmap_vma_start_write(struct vm_area_struct *vma)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0)
	vma_start_write(vma);
#endif
}

/* the write lock barmap_vma_start_write() took (6.4 and later) */
static inline void barmap_vma_assert_write_locked(struct vm_area_struct *vma)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0)
	vma_assert_write_locked(vma);
#endif
}

/* 6.13 turned the namespace argument into a string */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 13, 0)
#define BARMAP_IMPORT_NS_DMA_BUF()	MODULE_IMPORT_NS("DMA_BUF")
#else
#define BARMAP_IMPORT_NS_DMA_BUF()	MODULE_IMPORT_NS(DMA_BUF)
#endif

#endif /* BARMAP_COMPAT_H */
