/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * barmap: the userspace ABI of the barmap driver (/dev/barmapN).
 *
 * One header for the driver (guest-driver/barmap.c), the guest tool
 * (guest-driver/tools/barmap-check.c) and the Python harness
 * (harness/barmap/abi.py parses the plain "#define BARMAP_..." integer lines;
 * ioctl numbers are computed there from the same _IO* arguments).
 *
 * mmap(2) selects what to map, and how, with the page offset, the convention
 * of "id << PAGE_SHIFT".  Each id (range) is one mmap strategy, one row of
 * the driver's table barmap_strategies[] and of barmap-check's:
 *   id 0 (BARMAP_MMAP_ID_BAR)      BAR2; pages from the fault handler
 *                                  (vmf_insert_pfn, PMDs where the kernel can)
 *   id 1 (BARMAP_MMAP_ID_RESERVED) the reserved physical region given as the
 *                                  module parameters reserved_base/size,
 *                                  pages from the fault handler
 *   id 2 (BARMAP_MMAP_ID_BAR_REMAP)      BAR2, io_remap_pfn_range() in mmap()
 *   id 3 (BARMAP_MMAP_ID_RESERVED_REMAP) reserved region, remap_pfn_range()
 *   id 4 (BARMAP_MMAP_ID_BAR_IOMAP)      BAR2, vm_iomap_memory() in mmap()
 *   BARMAP_BUF_ID(kind, slot)      a buffer from BARMAP_IOC_ALLOC of that kind
 *                                  (BARMAP_BUF_*, each with its own allocator
 *                                  and mmap function); ALLOC returns the id
 * A mapping starts at the start of its object and is at most its size;
 * MAP_SHARED is required.  A BARMAP_BUF_DMABUF buffer is mapped through the
 * dma-buf file BARMAP_IOC_EXPORT returns, not through /dev/barmapN.
 *
 * Cache mode: every mapping of BAR2 (ids 0, 2, 4), and every mapping of the
 * reserved region (ids 1, 3), has the one mode in force for that object
 * while any mapping of it exists.  An mmap() asking for another mode fails
 * with EBUSY, WC where the CPU cannot have it (no PAT) with EOPNOTSUPP;
 * barmap_info reports the mode in force.  Buffers take what their allocator
 * gives (BARMAP_IOC_PTE reads what the page tables hold).
 *
 * Removal: remove() revokes every mapping of /dev/barmapN, of every
 * strategy, race-free (an access afterwards raises SIGBUS), and frees every
 * buffer's memory; a dma-buf keeps its pages, and its mappings, until its
 * last reference goes.
 *
 * A file opened O_RDONLY may use BARMAP_IOC_INFO and BARMAP_IOC_PTE and map
 * the BAR and the reserved region for reading (PROT_WRITE: EACCES); every
 * ioctl that changes device or buffer state (ALLOC, FREE, DMA, SET_CACHE,
 * SYNC, EXPORT) fails with EBADF.
 */
#ifndef _UAPI_BARMAP_H
#define _UAPI_BARMAP_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define BARMAP_MMAP_ID_BAR		0
#define BARMAP_MMAP_ID_RESERVED		1
#define BARMAP_MMAP_ID_BAR_REMAP	2
#define BARMAP_MMAP_ID_RESERVED_REMAP	3
#define BARMAP_MMAP_ID_BAR_IOMAP	4
#define BARMAP_BUF_ID_FIRST		16
#define BARMAP_BUF_MAX			64	/* buffers per open file */
#define BARMAP_BUF_SIZE_MAX		0x400000	/* 4 MiB per buffer */
/* the mmap id of slot 0..BARMAP_BUF_MAX-1 of a buffer kind */
#define BARMAP_BUF_ID(kind, slot) \
	(BARMAP_BUF_ID_FIRST + (kind) * BARMAP_BUF_MAX + (slot))

/* barmap_alloc.kind: how a buffer is allocated and mapped */
#define BARMAP_BUF_COHERENT		0	/* dma_alloc_coherent, dma_mmap_coherent */
#define BARMAP_BUF_WC			1	/* dma_alloc_wc, dma_mmap_wc */
#define BARMAP_BUF_PAGES		2	/* dma_alloc_pages, dma_mmap_pages */
#define BARMAP_BUF_NONCONTIG		3	/* dma_alloc_noncontiguous, dma_mmap_noncontiguous */
#define BARMAP_BUF_KMALLOC		4	/* kmalloc, remap_pfn_range of its PFNs */
#define BARMAP_BUF_INSERT		5	/* alloc_pages, vm_insert_pages */
#define BARMAP_BUF_FAULT		6	/* alloc_pages, .fault returns vmf->page */
#define BARMAP_BUF_VMALLOC		7	/* vmalloc_user, remap_vmalloc_range */
#define BARMAP_BUF_DMABUF		8	/* alloc_pages, exported as a dma-buf */
#define BARMAP_BUF_KINDS		9

/* barmap_info.cache_mode and BARMAP_IOC_SET_CACHE */
#define BARMAP_CACHE_UC			0	/* pgprot_noncached, the default */
#define BARMAP_CACHE_WC			1	/* pgprot_writecombine */
#define BARMAP_CACHE_NONE		0xffffffff	/* barmap_info: not mapped */

/* barmap_dma.dir */
#define BARMAP_DMA_TO_DEV		0	/* buffer -> BAR2 */
#define BARMAP_DMA_FROM_DEV		1	/* BAR2 -> buffer */

struct barmap_info {
	__u64 bar_phys;		/* physical address of BAR2 */
	__u64 bar_size;		/* size of BAR2 in bytes */
	__u64 reserved_phys;	/* reserved region, 0 if none */
	__u64 reserved_size;
	__u32 caps;		/* BARMAP_REG_CAPS of the device */
	__u32 version;		/* BARMAP_REG_VERSION of the device */
	__u32 cache_mode;	/* BARMAP_CACHE_* for later mappings of this file */
	__u32 minor;		/* N of /dev/barmapN */
	__u32 bar_mode;		/* mode in force for BAR2, or BARMAP_CACHE_NONE */
	__u32 reserved_mode;	/* same for the reserved region */
};

struct barmap_alloc {
	__u64 size;		/* in: bytes, rounded up to a page */
	__u64 dma_addr;		/* out: bus address (of the first segment) */
	__u32 id;		/* out: mmap id, BARMAP_BUF_ID(kind, slot) */
	__u32 kind;		/* in: BARMAP_BUF_* */
};

struct barmap_dma {
	__u64 bar_off;		/* offset in BAR2 */
	__u64 buf_off;		/* offset in the buffer */
	__u64 len;		/* bytes */
	__u32 id;		/* buffer id */
	__u32 dir;		/* BARMAP_DMA_TO_DEV or BARMAP_DMA_FROM_DEV */
	__u32 timeout_ms;	/* 0: driver default */
	__u32 status;		/* out: BARMAP_REG_DMA_STATUS at completion */
};

/* barmap_sync.flags, as DMA_BUF_IOCTL_SYNC's: bracket CPU access to a buffer */
#define BARMAP_SYNC_READ		1
#define BARMAP_SYNC_WRITE		2
#define BARMAP_SYNC_RW			3
#define BARMAP_SYNC_START		0
#define BARMAP_SYNC_END			4

struct barmap_sync {
	__u32 id;		/* buffer id */
	__u32 flags;		/* BARMAP_SYNC_START or _END, | READ/WRITE */
};

struct barmap_export {
	__u32 id;		/* in: a BARMAP_BUF_DMABUF buffer */
	__s32 fd;		/* out: the dma-buf, O_RDWR | O_CLOEXEC */
};

/* barmap_pte.memtype: the memory type the page tables give an address */
#define BARMAP_MEMTYPE_NONE		0	/* nothing mapped there */
#define BARMAP_MEMTYPE_WB		1	/* x86 PAT types */
#define BARMAP_MEMTYPE_WC		2
#define BARMAP_MEMTYPE_UC_MINUS		3
#define BARMAP_MEMTYPE_UC		4
#define BARMAP_MEMTYPE_WT		5
#define BARMAP_MEMTYPE_WP		6
#define BARMAP_MEMTYPE_NORMAL		16	/* arm64 MAIR attribute indices */
#define BARMAP_MEMTYPE_NORMAL_TAGGED	17
#define BARMAP_MEMTYPE_NORMAL_NC	18
#define BARMAP_MEMTYPE_DEVICE_NGNRNE	19
#define BARMAP_MEMTYPE_DEVICE_NGNRE	20
#define BARMAP_MEMTYPE_UNKNOWN		31

/* barmap_pte.level: the page-table level holding the entry */
#define BARMAP_PTE_LEVEL_NONE		0
#define BARMAP_PTE_LEVEL_PTE		1
#define BARMAP_PTE_LEVEL_PMD		2
#define BARMAP_PTE_LEVEL_PUD		3

/* barmap_pte.flags */
#define BARMAP_PTE_WRITE		1
#define BARMAP_PTE_SPECIAL		2	/* no struct page behind it (PFN map) */

struct barmap_pte {
	__u64 addr;		/* in: a virtual address of that process */
	__u64 entry;		/* out: the raw entry */
	__u64 pfn;		/* out: the page frame it maps */
	__u32 level;		/* out: BARMAP_PTE_LEVEL_* */
	__u32 memtype;		/* out: BARMAP_MEMTYPE_* */
	__u32 flags;		/* out: BARMAP_PTE_* */
	__u32 pid;		/* in: whose page tables, 0 for the caller's */
};

#define BARMAP_IOC_MAGIC		'B'
#define BARMAP_IOC_INFO			_IOR(BARMAP_IOC_MAGIC, 0x01, struct barmap_info)
#define BARMAP_IOC_ALLOC		_IOWR(BARMAP_IOC_MAGIC, 0x02, struct barmap_alloc)
#define BARMAP_IOC_FREE			_IOW(BARMAP_IOC_MAGIC, 0x03, __u32)
#define BARMAP_IOC_DMA			_IOWR(BARMAP_IOC_MAGIC, 0x04, struct barmap_dma)
#define BARMAP_IOC_SET_CACHE		_IOW(BARMAP_IOC_MAGIC, 0x05, __u32)
/* dma_sync_*_for_cpu (START) / _for_device (END) of a streaming buffer */
#define BARMAP_IOC_SYNC			_IOW(BARMAP_IOC_MAGIC, 0x06, struct barmap_sync)
/* a dma-buf of a BARMAP_BUF_DMABUF buffer */
#define BARMAP_IOC_EXPORT		_IOWR(BARMAP_IOC_MAGIC, 0x07, struct barmap_export)
/* the page-table entry for an address of a process (CAP_SYS_ADMIN): what
 * pagemap cannot say of a PFN map, which its walk skips */
#define BARMAP_IOC_PTE			_IOWR(BARMAP_IOC_MAGIC, 0x08, struct barmap_pte)

#endif /* _UAPI_BARMAP_H */
