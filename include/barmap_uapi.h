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
 * of "id << PAGE_SHIFT" (the mmap strategy):
 *   id 0 (BARMAP_MMAP_ID_BAR)      BAR2 of the device; pages come from the
 *                                  fault handler (vmf_insert_pfn)
 *   id 1 (BARMAP_MMAP_ID_RESERVED) the reserved physical region given as the
 *                                  module parameters reserved_base/size,
 *                                  pages from the fault handler
 *   id 2 (BARMAP_MMAP_ID_BAR_REMAP)      BAR2, io_remap_pfn_range() in mmap()
 *   id 3 (BARMAP_MMAP_ID_RESERVED_REMAP) reserved region, remap_pfn_range()
 *   id >= BARMAP_BUF_ID_FIRST      a DMA buffer from BARMAP_IOC_ALLOC,
 *                                  dma_mmap_coherent()
 * A mapping starts at the start of its object and is at most its size;
 * MAP_SHARED is required.
 *
 * Cache mode: every mapping of BAR2 (ids 0, 2), and every mapping of the
 * reserved region (ids 1, 3), has the one mode in force for that object
 * while any mapping of it exists.  An mmap() asking for another mode fails
 * with EBUSY, WC where the CPU cannot have it (no PAT) with EOPNOTSUPP;
 * barmap_info reports the mode in force.
 *
 * A file opened O_RDONLY may use BARMAP_IOC_INFO and map the BAR and the
 * reserved region for reading (PROT_WRITE: EACCES); every ioctl that changes
 * device or buffer state (ALLOC, FREE, DMA, SET_CACHE) fails with EBADF.
 */
#ifndef _UAPI_BARMAP_H
#define _UAPI_BARMAP_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define BARMAP_MMAP_ID_BAR		0
#define BARMAP_MMAP_ID_RESERVED		1
#define BARMAP_MMAP_ID_BAR_REMAP	2
#define BARMAP_MMAP_ID_RESERVED_REMAP	3
#define BARMAP_BUF_ID_FIRST		16
#define BARMAP_BUF_MAX			64	/* buffers per open file */
#define BARMAP_BUF_SIZE_MAX		0x400000	/* 4 MiB per buffer */

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
	__u64 dma_addr;		/* out: bus address of the buffer */
	__u32 id;		/* out: mmap id, >= BARMAP_BUF_ID_FIRST */
	__u32 flags;		/* in: must be 0 */
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

#define BARMAP_IOC_MAGIC		'B'
#define BARMAP_IOC_INFO			_IOR(BARMAP_IOC_MAGIC, 0x01, struct barmap_info)
#define BARMAP_IOC_ALLOC		_IOWR(BARMAP_IOC_MAGIC, 0x02, struct barmap_alloc)
#define BARMAP_IOC_FREE			_IOW(BARMAP_IOC_MAGIC, 0x03, __u32)
#define BARMAP_IOC_DMA			_IOWR(BARMAP_IOC_MAGIC, 0x04, struct barmap_dma)
#define BARMAP_IOC_SET_CACHE		_IOW(BARMAP_IOC_MAGIC, 0x05, __u32)

#endif /* _UAPI_BARMAP_H */
