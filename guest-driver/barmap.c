// SPDX-License-Identifier: GPL-2.0-only
/*
 * barmap: Linux driver for the barmap QEMU PCI test device.
 *
 * The device has a register BAR (BARMAP_REG_BAR) and a RAM-backed 64-bit
 * prefetchable BAR (BARMAP_MEM_BAR).  /dev/barmapN maps memory into a
 * process in every way a driver's mmap callback can: BAR2 and a reserved
 * region at fault time or in mmap(), and buffers from each kernel allocator
 * with its own mmap function.  Each way is one row of barmap_strategies[]
 * (the mmap id travels in the offset, id << PAGE_SHIFT; see barmap_uapi.h).
 *
 * Lifetime rules (documented in README.md):
 *  - struct barmap_dev lives as long as its class device; open files, the
 *    cdev and buffers hold references on it, so it survives remove().
 *  - A buffer is referenced by its slot in the open file, by every VMA
 *    mapping it and by every dma-buf of it; FREE of a mapped buffer fails
 *    with -EBUSY.
 *  - MAP_PRIVATE is refused by testing VM_MAYSHARE, not VM_SHARED: mmap()
 *    clears VM_SHARED for a MAP_SHARED mapping of an O_RDONLY file, which
 *    must still work (read only).
 *  - All opens of a device share one address_space (an inode of a small
 *    pseudo filesystem, as vfio does), so remove() revokes every mapping of
 *    every strategy with one unmap_mapping_range() after marking the device
 *    dead and waiting for every mmap() in flight (barmap_revoke()); faults
 *    check "dead" under the same lock, so none maps a page again.  Later
 *    accesses get SIGBUS.  remove() then frees every buffer's memory; a
 *    dma-buf keeps its pages until its last reference goes.
 *  - One cache mode per region (BAR2, reserved) while it is mapped; see
 *    barmap_region_get().
 */

#include <linux/cdev.h>
#include <linux/completion.h>
#include <linux/delay.h>
#include <linux/device.h>
#include <linux/dma-buf.h>
#include <linux/dma-mapping.h>
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/idr.h>
#include <linux/interrupt.h>
#include <linux/io.h>
#include <linux/ioport.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/lockdep.h>
#include <linux/mm.h>
#include <linux/mmap_lock.h>
#include <linux/module.h>
#include <linux/mount.h>
#include <linux/mutex.h>
#include <linux/of.h>
#include <linux/of_reserved_mem.h>
#include <linux/pci.h>
#include <linux/pagemap.h>
#include <linux/pseudo_fs.h>
#include <linux/rwsem.h>
#include <linux/sched/mm.h>
#include <linux/sched/task.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>

#include "barmap-compat.h"
#include "barmap_regs.h"
#include "barmap_uapi.h"

#define DRV_NAME			"barmap"
#define BARMAP_MAX_DEVS			256
#define BARMAP_DMA_TIMEOUT_MS		1000
#define BARMAP_DMA_TIMEOUT_MAX_MS	60000
#define BARMAP_DMA_DRAIN_MS		1000
#define BARMAP_FS_MAGIC			0x62726d70	/* "brmp" */
#define BARMAP_BUF_ID_END		BARMAP_BUF_ID(BARMAP_BUF_KINDS, 0)

static unsigned long reserved_base;
module_param(reserved_base, ulong, 0444);
MODULE_PARM_DESC(reserved_base,
		 "physical base of a memmap=SIZE$ADDR reservation (mmap id 1; default: a device tree reserved-memory node compatible with \"barmap,reserved\")");

static unsigned long reserved_size;
module_param(reserved_size, ulong, 0444);
MODULE_PARM_DESC(reserved_size, "size in bytes of that reservation");

static bool pitfall_wrong_pfn;
module_param(pitfall_wrong_pfn, bool, 0444);
MODULE_PARM_DESC(pitfall_wrong_pfn,
		 "reserved-remap passes the region's address where its PFN belongs (the bug barmap-why names wrong-pfn)");

/* a physical range that io mappings map, and the cache mode in force */
struct barmap_region {
	phys_addr_t phys;
	resource_size_t size;
	struct mutex lock;		/* users, mode, pin */
	unsigned long users;		/* VMAs mapping the region; lock */
	u32 mode;			/* BARMAP_CACHE_*, while users; lock */
	void __iomem *pin;		/* holds the memory type, while users; lock */
};

static bool reserved_ok;
static struct barmap_region barmap_reserved = {
	.lock = __MUTEX_INITIALIZER(barmap_reserved.lock),
};

static struct vfsmount *barmap_mnt;
static struct class *barmap_class;
static dev_t barmap_devt;
static DEFINE_IDA(barmap_ida);

/* the sysfs counters (BARMAP_COUNTER_ATTR), one file each */
struct barmap_counters {
	atomic_t irq_count;		/* interrupts handled */
	atomic_t dma_count;		/* transfers started */
	atomic_t dma_timeouts;		/* transfers without a completion interrupt */
};

struct barmap_dev {
	struct device dev;		/* the class device; owns this struct */
	struct cdev cdev;
	struct pci_dev *pdev;		/* referenced until release */
	struct inode *inode;		/* its i_mapping: every open file's */
	struct barmap_region bar;	/* BAR2 */
	void __iomem *regs;
	u32 version;
	int minor;
	int irq;
	bool msi;

	struct rw_semaphore state_rw;	/* write: remove(); read: every user */
	bool dead;			/* state_rw */

	struct mutex files_lock;	/* files */
	struct list_head files;		/* files_lock */

	struct mutex bufs_lock;		/* bufs, and each one's memory */
	struct list_head bufs;		/* every buffer with memory; bufs_lock */

	struct mutex mms_lock;		/* mms, revoke_gen */
	struct list_head mms;		/* struct barmap_mm; mms_lock */
	u64 revoke_gen;			/* mms_lock */

	struct mutex dma_lock;		/* one DMA at a time */
	struct completion dma_done;
	u32 dma_status;

	struct barmap_counters counters;
};

/*
 * An mm that ran the device's mmap(): remove() takes its mmap_lock, which an
 * mmap() in flight holds until its VMA is linked where unmap_mapping_range()
 * finds it (barmap_revoke()).  vmas counts the mm's VMAs of the device, for
 * the entry's lifetime only.
 */
struct barmap_mm {
	struct list_head node;		/* in bdev->mms */
	struct mm_struct *mm;		/* mmgrab()bed while listed */
	unsigned long vmas;
	u64 synced;			/* the revoke generation that waited on it */
};

struct barmap_buf_kind;

struct barmap_buf {
	struct kref ref;		/* slot + each VMA + each dma-buf + DMA */
	struct barmap_dev *bdev;	/* holds a reference on bdev->dev */
	const struct barmap_buf_kind *kind;
	struct list_head dev_node;	/* in bdev->bufs while it has memory */
	size_t size;
	u32 id;
	bool leaked;			/* the device may still write into it */
	bool dma_mapped;		/* the device's mapping exists; state_rw */
	atomic_t map_count;		/* VMAs of /dev/barmapN mapping it */

	/* the memory; which fields a kind uses is its own business */
	void *vaddr;			/* the kernel's view, NULL once freed */
	dma_addr_t dma_addr;		/* bus address, contiguous kinds */
	struct page *page;		/* dma_alloc_pages() */
	struct page **pages;		/* every page, page-backed kinds */
	struct sg_table *sgt;		/* bus segments, scattered kinds */
	struct sg_table vmalloc_sgt;	/* BARMAP_BUF_VMALLOC's own */
};

struct barmap_file {
	struct barmap_dev *bdev;
	struct file *filp;
	struct list_head node;		/* in bdev->files */
	struct mutex lock;		/* bufs */
	u32 cache_mode;
	struct barmap_buf *bufs[BARMAP_BUF_MAX];	/* lock */
};

static inline struct barmap_dev *to_barmap_dev(struct device *dev)
{
	return container_of(dev, struct barmap_dev, dev);
}

static struct device *barmap_dma_dev(struct barmap_buf *buf)
{
	return &buf->bdev->pdev->dev;
}

/* ---- buffer kinds: one allocator, free and mmap function each ---- */

struct barmap_buf_kind {
	u32 kind;			/* BARMAP_BUF_* */
	bool streaming;			/* dma_sync_* bracket CPU and device access */
	int (*alloc)(struct barmap_buf *buf);
	/* give back the device's DMA mapping and, unless keep_pages, the memory */
	void (*free)(struct barmap_buf *buf, bool keep_pages);
	/* fill the VMA (vm_pgoff 0: the start of the buffer); NULL: at fault */
	int (*mmap)(struct barmap_buf *buf, struct vm_area_struct *vma);
};

static int barmap_coherent_alloc(struct barmap_buf *buf)
{
	buf->vaddr = dma_alloc_coherent(barmap_dma_dev(buf), buf->size,
					&buf->dma_addr, GFP_KERNEL);
	return buf->vaddr ? 0 : -ENOMEM;
}

static void barmap_coherent_free(struct barmap_buf *buf, bool keep_pages)
{
	dma_free_coherent(barmap_dma_dev(buf), buf->size, buf->vaddr,
			  buf->dma_addr);
}

static int barmap_coherent_mmap(struct barmap_buf *buf,
				struct vm_area_struct *vma)
{
	return dma_mmap_coherent(barmap_dma_dev(buf), vma, buf->vaddr,
				 buf->dma_addr, buf->size);
}

static int barmap_wc_alloc(struct barmap_buf *buf)
{
	buf->vaddr = dma_alloc_wc(barmap_dma_dev(buf), buf->size,
				  &buf->dma_addr, GFP_KERNEL);
	return buf->vaddr ? 0 : -ENOMEM;
}

static void barmap_wc_free(struct barmap_buf *buf, bool keep_pages)
{
	dma_free_wc(barmap_dma_dev(buf), buf->size, buf->vaddr, buf->dma_addr);
}

static int barmap_wc_mmap(struct barmap_buf *buf, struct vm_area_struct *vma)
{
	return dma_mmap_wc(barmap_dma_dev(buf), vma, buf->vaddr, buf->dma_addr,
			   buf->size);
}

static int barmap_pages_alloc(struct barmap_buf *buf)
{
	buf->page = dma_alloc_pages(barmap_dma_dev(buf), buf->size,
				    &buf->dma_addr, DMA_BIDIRECTIONAL,
				    GFP_KERNEL | __GFP_ZERO);
	if (!buf->page)
		return -ENOMEM;
	buf->vaddr = page_address(buf->page);
	return 0;
}

static void barmap_pages_free(struct barmap_buf *buf, bool keep_pages)
{
	dma_free_pages(barmap_dma_dev(buf), buf->size, buf->page,
		       buf->dma_addr, DMA_BIDIRECTIONAL);
}

static int barmap_pages_mmap(struct barmap_buf *buf, struct vm_area_struct *vma)
{
	return dma_mmap_pages(barmap_dma_dev(buf), vma, buf->size, buf->page);
}

static int barmap_noncontig_alloc(struct barmap_buf *buf)
{
	struct device *dev = barmap_dma_dev(buf);

	buf->sgt = dma_alloc_noncontiguous(dev, buf->size, DMA_BIDIRECTIONAL,
					   GFP_KERNEL | __GFP_ZERO, 0);
	if (!buf->sgt)
		return -ENOMEM;
	buf->vaddr = dma_vmap_noncontiguous(dev, buf->size, buf->sgt);
	if (!buf->vaddr) {
		dma_free_noncontiguous(dev, buf->size, buf->sgt,
				       DMA_BIDIRECTIONAL);
		return -ENOMEM;
	}
	buf->dma_addr = sg_dma_address(buf->sgt->sgl);
	return 0;
}

static void barmap_noncontig_free(struct barmap_buf *buf, bool keep_pages)
{
	struct device *dev = barmap_dma_dev(buf);

	dma_vunmap_noncontiguous(dev, buf->vaddr);
	dma_free_noncontiguous(dev, buf->size, buf->sgt, DMA_BIDIRECTIONAL);
}

static int barmap_noncontig_mmap(struct barmap_buf *buf,
				 struct vm_area_struct *vma)
{
	return dma_mmap_noncontiguous(barmap_dma_dev(buf), vma, buf->size,
				      buf->sgt);
}

/* RAM of the kernel's own allocators, mapped for the device by the streaming API */
static int barmap_stream_map(struct barmap_buf *buf)
{
	struct device *dev = barmap_dma_dev(buf);

	buf->dma_addr = dma_map_single(dev, buf->vaddr, buf->size,
				       DMA_BIDIRECTIONAL);
	return dma_mapping_error(dev, buf->dma_addr) ? -ENOMEM : 0;
}

static void barmap_stream_unmap(struct barmap_buf *buf)
{
	dma_unmap_single(barmap_dma_dev(buf), buf->dma_addr, buf->size,
			 DMA_BIDIRECTIONAL);
}

static int barmap_kmalloc_alloc(struct barmap_buf *buf)
{
	int ret;

	/* a page-aligned kmalloc (every size above a page is); remap needs whole pages */
	buf->vaddr = kmalloc(buf->size, GFP_KERNEL | __GFP_ZERO);
	if (!buf->vaddr)
		return -ENOMEM;
	ret = PAGE_ALIGNED(buf->vaddr) ? barmap_stream_map(buf) : -ENOMEM;
	if (ret)
		kfree(buf->vaddr);
	return ret;
}

static void barmap_kmalloc_free(struct barmap_buf *buf, bool keep_pages)
{
	barmap_stream_unmap(buf);
	kfree(buf->vaddr);
}

/* what the question's driver did: remap_pfn_range() of kmalloc()ed RAM by its PFN */
static int barmap_kmalloc_mmap(struct barmap_buf *buf,
			       struct vm_area_struct *vma)
{
	return remap_pfn_range(vma, vma->vm_start,
			       PHYS_PFN(virt_to_phys(buf->vaddr)),
			       vma->vm_end - vma->vm_start, vma->vm_page_prot);
}

/* contiguous pages with a reference each (split_page), as GUP and rmap want */
static int barmap_page_array_alloc(struct barmap_buf *buf)
{
	unsigned int order = get_order(buf->size);
	unsigned long i, n = buf->size >> PAGE_SHIFT;
	struct page *page;
	int ret;

	buf->pages = kvcalloc(n, sizeof(*buf->pages), GFP_KERNEL);
	if (!buf->pages)
		return -ENOMEM;
	page = alloc_pages(GFP_KERNEL | __GFP_ZERO, order);
	if (!page) {
		kvfree(buf->pages);
		return -ENOMEM;
	}
	split_page(page, order);
	for (i = 0; i < (1UL << order); i++) {
		if (i < n)
			buf->pages[i] = page + i;
		else
			__free_page(page + i);
	}
	buf->vaddr = page_address(page);
	ret = barmap_stream_map(buf);
	if (ret) {
		for (i = 0; i < n; i++)
			__free_page(buf->pages[i]);
		kvfree(buf->pages);
	}
	return ret;
}

/* pages GUP pinned (O_DIRECT, io_uring) go when their last reference does */
static void barmap_page_array_free(struct barmap_buf *buf, bool keep_pages)
{
	unsigned long i;

	barmap_stream_unmap(buf);
	if (keep_pages)
		return;
	for (i = 0; i < buf->size >> PAGE_SHIFT; i++)
		put_page(buf->pages[i]);
	kvfree(buf->pages);
	buf->pages = NULL;
}

static int barmap_insert_mmap(struct barmap_buf *buf,
			      struct vm_area_struct *vma)
{
	unsigned long n = vma_pages(vma);

	return vm_insert_pages(vma, vma->vm_start, buf->pages, &n);
}

static int barmap_vmalloc_alloc(struct barmap_buf *buf)
{
	unsigned long i, n = buf->size >> PAGE_SHIFT;
	int ret = -ENOMEM;

	buf->vaddr = vmalloc_user(buf->size);
	if (!buf->vaddr)
		return -ENOMEM;
	buf->pages = kvcalloc(n, sizeof(*buf->pages), GFP_KERNEL);
	if (!buf->pages)
		goto err_vfree;
	for (i = 0; i < n; i++)
		buf->pages[i] = vmalloc_to_page(buf->vaddr + i * PAGE_SIZE);
	ret = sg_alloc_table_from_pages(&buf->vmalloc_sgt, buf->pages, n, 0,
					buf->size, GFP_KERNEL);
	if (ret)
		goto err_pages;
	ret = dma_map_sgtable(barmap_dma_dev(buf), &buf->vmalloc_sgt,
			      DMA_BIDIRECTIONAL, 0);
	if (ret)
		goto err_sgt;
	buf->sgt = &buf->vmalloc_sgt;
	buf->dma_addr = sg_dma_address(buf->sgt->sgl);
	return 0;

err_sgt:
	sg_free_table(&buf->vmalloc_sgt);
err_pages:
	kvfree(buf->pages);
err_vfree:
	vfree(buf->vaddr);
	return ret;
}

static void barmap_vmalloc_free(struct barmap_buf *buf, bool keep_pages)
{
	dma_unmap_sgtable(barmap_dma_dev(buf), buf->sgt, DMA_BIDIRECTIONAL, 0);
	sg_free_table(&buf->vmalloc_sgt);
	kvfree(buf->pages);
	vfree(buf->vaddr);
}

static int barmap_vmalloc_mmap(struct barmap_buf *buf,
			       struct vm_area_struct *vma)
{
	return remap_vmalloc_range(vma, buf->vaddr, 0);
}

static const struct barmap_buf_kind barmap_buf_kinds[BARMAP_BUF_KINDS] = {
	[BARMAP_BUF_COHERENT] = { BARMAP_BUF_COHERENT, false,
		barmap_coherent_alloc, barmap_coherent_free, barmap_coherent_mmap },
	[BARMAP_BUF_WC] = { BARMAP_BUF_WC, false,
		barmap_wc_alloc, barmap_wc_free, barmap_wc_mmap },
	[BARMAP_BUF_PAGES] = { BARMAP_BUF_PAGES, true,
		barmap_pages_alloc, barmap_pages_free, barmap_pages_mmap },
	[BARMAP_BUF_NONCONTIG] = { BARMAP_BUF_NONCONTIG, true,
		barmap_noncontig_alloc, barmap_noncontig_free,
		barmap_noncontig_mmap },
	[BARMAP_BUF_KMALLOC] = { BARMAP_BUF_KMALLOC, true,
		barmap_kmalloc_alloc, barmap_kmalloc_free, barmap_kmalloc_mmap },
	[BARMAP_BUF_INSERT] = { BARMAP_BUF_INSERT, true,
		barmap_page_array_alloc, barmap_page_array_free,
		barmap_insert_mmap },
	[BARMAP_BUF_FAULT] = { BARMAP_BUF_FAULT, true,
		barmap_page_array_alloc, barmap_page_array_free, NULL },
	[BARMAP_BUF_VMALLOC] = { BARMAP_BUF_VMALLOC, true,
		barmap_vmalloc_alloc, barmap_vmalloc_free, barmap_vmalloc_mmap },
	[BARMAP_BUF_DMABUF] = { BARMAP_BUF_DMABUF, true,
		barmap_page_array_alloc, barmap_page_array_free, NULL },
};

/*
 * The device's DMA mapping and, for every kind but a dma-buf's (whose pages
 * its fds own), the memory go back to the kernel: at remove(), once every
 * mapping is revoked, or with the last reference.
 */
static void barmap_buf_give_back(struct barmap_buf *buf, bool last)
{
	struct barmap_dev *bdev = buf->bdev;
	bool keep_pages = !last && buf->kind->kind == BARMAP_BUF_DMABUF;

	lockdep_assert_held(&bdev->bufs_lock);
	if (buf->leaked)
		return;		/* the device may still write into it */
	if (buf->dma_mapped) {
		buf->kind->free(buf, keep_pages);
		buf->dma_mapped = false;
		if (!keep_pages)
			buf->vaddr = NULL;
	} else if (last && buf->vaddr) {
		unsigned long i;	/* a dma-buf's pages, kept at remove() */

		for (i = 0; i < buf->size >> PAGE_SHIFT; i++)
			put_page(buf->pages[i]);
		kvfree(buf->pages);
		buf->vaddr = NULL;
	}
	if (!buf->vaddr && !list_empty(&buf->dev_node))
		list_del_init(&buf->dev_node);
}

static void barmap_buf_release(struct kref *ref)
{
	struct barmap_buf *buf = container_of(ref, struct barmap_buf, ref);
	struct barmap_dev *bdev = buf->bdev;

	mutex_lock(&bdev->bufs_lock);
	barmap_buf_give_back(buf, true);
	if (!list_empty(&buf->dev_node))
		list_del(&buf->dev_node);	/* leaked */
	mutex_unlock(&bdev->bufs_lock);
	kfree(buf);
	put_device(&bdev->dev);
}

static void barmap_buf_put(struct barmap_buf *buf)
{
	kref_put(&buf->ref, barmap_buf_release);
}

/* the slot and kind an id names, or -EINVAL */
static int barmap_buf_slot(u32 id, u32 *kind)
{
	if (id < BARMAP_BUF_ID_FIRST || id >= BARMAP_BUF_ID_END)
		return -EINVAL;
	*kind = (id - BARMAP_BUF_ID_FIRST) / BARMAP_BUF_MAX;
	return (id - BARMAP_BUF_ID_FIRST) % BARMAP_BUF_MAX;
}

/* Returns the buffer with a new reference, or NULL. */
static struct barmap_buf *barmap_buf_get(struct barmap_file *bf, u32 id)
{
	struct barmap_buf *buf = NULL;
	u32 kind;
	int slot = barmap_buf_slot(id, &kind);

	if (slot < 0)
		return NULL;
	mutex_lock(&bf->lock);
	buf = bf->bufs[slot];
	if (buf && buf->id == id)
		kref_get(&buf->ref);
	else
		buf = NULL;
	mutex_unlock(&bf->lock);
	return buf;
}

static void barmap_file_drop_bufs(struct barmap_file *bf)
{
	struct barmap_buf *buf;
	int i;

	mutex_lock(&bf->lock);
	for (i = 0; i < BARMAP_BUF_MAX; i++) {
		buf = bf->bufs[i];
		bf->bufs[i] = NULL;
		if (buf)
			barmap_buf_put(buf);
	}
	mutex_unlock(&bf->lock);
}

/* the bus address at off and how many bytes from there are contiguous */
static dma_addr_t barmap_buf_bus(struct barmap_buf *buf, u64 off, u64 *contig)
{
	struct scatterlist *sg;
	u64 start = 0;
	int i;

	if (!buf->sgt) {
		*contig = buf->size - off;
		return buf->dma_addr + off;
	}
	for_each_sgtable_dma_sg(buf->sgt, sg, i) {
		if (off < start + sg_dma_len(sg)) {
			*contig = start + sg_dma_len(sg) - off;
			return sg_dma_address(sg) + (off - start);
		}
		start += sg_dma_len(sg);
	}
	*contig = 0;
	return 0;
}

/* hand the buffer to the CPU (dma_sync_*_for_cpu) or to the device */
static void barmap_buf_sync(struct barmap_buf *buf, bool for_cpu,
			    enum dma_data_direction dir)
{
	struct device *dev = barmap_dma_dev(buf);

	lockdep_assert_held(&buf->bdev->state_rw);
	if (!buf->kind->streaming || !buf->dma_mapped)
		return;
	if (buf->sgt && for_cpu)
		dma_sync_sgtable_for_cpu(dev, buf->sgt, dir);
	else if (buf->sgt)
		dma_sync_sgtable_for_device(dev, buf->sgt, dir);
	else if (for_cpu)
		dma_sync_single_for_cpu(dev, buf->dma_addr, buf->size, dir);
	else
		dma_sync_single_for_device(dev, buf->dma_addr, buf->size, dir);
}

/* ---- the strategies: one row each, one mmap id (range), one mmap function ---- */

enum barmap_obj { BARMAP_OBJ_BAR, BARMAP_OBJ_RESERVED, BARMAP_OBJ_BUF };

struct barmap_strategy {
	u32 id;				/* first mmap id (buffer rows: of kind) */
	u32 count;			/* ids in the row */
	const char *name;
	enum barmap_obj obj;
	int (*mmap)(struct barmap_file *bf, struct vm_area_struct *vma,
		    const struct barmap_strategy *st, unsigned long len);
	const struct vm_operations_struct *vm_ops;
	/* BAR and reserved rows: fill the page tables in mmap(); NULL: at fault */
	int (*fill)(struct vm_area_struct *vma, struct barmap_region *r,
		    unsigned long len);
	u32 kind;			/* buffer rows: BARMAP_BUF_* */
};

/* the first mmap id of a row */
static u32 barmap_row_id(const struct barmap_strategy *st)
{
	return st->obj == BARMAP_OBJ_BUF ? BARMAP_BUF_ID(st->kind, 0) : st->id;
}

static struct barmap_region *barmap_region_of(struct barmap_dev *bdev,
					      enum barmap_obj obj)
{
	if (obj == BARMAP_OBJ_BAR)
		return &bdev->bar;
	return reserved_ok ? &barmap_reserved : NULL;
}

/*
 * The cache mode in force.  Every mapping of a region holds it; the first
 * pins the memory type of the whole region (an ioremap the kernel's PAT
 * records), so the PTEs that faults insert get exactly that type, and the
 * pin is checked: a type the kernel downgraded or changed is refused.
 */
static bool barmap_pin_has_mode(void __iomem *pin, u32 mode)
{
#ifdef CONFIG_X86
	enum page_cache_mode want = mode == BARMAP_CACHE_WC ?
		_PAGE_CACHE_MODE_WC : _PAGE_CACHE_MODE_UC_MINUS;
	unsigned int level;
	pgprotval_t got;
	pte_t *pte;

	pte = lookup_address((unsigned long)pin, &level);
	if (!pte)
		return false;
	got = pte_flags(*pte);
	if (level != PG_LEVEL_4K)
		got = pgprot_val(pgprot_large_2_4k(__pgprot(got)));
	return (got & _PAGE_CACHE_MASK) ==
	       (cachemode2protval(want) & _PAGE_CACHE_MASK);
#else
	return true;
#endif
}

static int barmap_region_get(struct barmap_region *r, u32 mode)
{
	void __iomem *pin;
	int ret = 0;

#ifdef CONFIG_X86
	if (mode == BARMAP_CACHE_WC && !pat_enabled())
		return -EOPNOTSUPP;
#endif
	mutex_lock(&r->lock);
	if (r->users) {
		if (r->mode != mode)
			ret = -EBUSY;
	} else {
		if (mode == BARMAP_CACHE_WC)
			pin = ioremap_wc(r->phys, r->size);
		else
			pin = ioremap(r->phys, r->size);
		if (!pin) {
			ret = -ENOMEM;
		} else if (!barmap_pin_has_mode(pin, mode)) {
			iounmap(pin);
			ret = -EBUSY;	/* another memory type holds the range */
		} else {
			r->pin = pin;
			r->mode = mode;
		}
	}
	if (!ret)
		r->users++;
	mutex_unlock(&r->lock);
	return ret;
}

static void barmap_region_unpin(struct barmap_region *r)
{
	lockdep_assert_held(&r->lock);
	if (r->pin) {
		iounmap(r->pin);
		r->pin = NULL;
	}
}

static void barmap_region_put(struct barmap_region *r)
{
	mutex_lock(&r->lock);
	if (!--r->users)
		barmap_region_unpin(r);
	mutex_unlock(&r->lock);
}

static u32 barmap_region_mode(struct barmap_region *r)
{
	u32 mode = BARMAP_CACHE_NONE;

	if (!r)
		return mode;
	mutex_lock(&r->lock);
	if (r->users)
		mode = r->mode;
	mutex_unlock(&r->lock);
	return mode;
}

/* ---- the mms that map the device, and revocation ---- */

static struct barmap_mm *barmap_mm_find(struct barmap_dev *bdev,
					struct mm_struct *mm)
{
	struct barmap_mm *e;

	lockdep_assert_held(&bdev->mms_lock);
	list_for_each_entry(e, &bdev->mms, node)
		if (e->mm == mm)
			return e;
	return NULL;
}

/* mmap(): before its VMA is filled, so that remove() waits for the mm */
static int barmap_mm_track(struct barmap_dev *bdev, struct mm_struct *mm)
{
	struct barmap_mm *e;
	int ret = 0;

	/* listed before remove() can set "dead" and read the list */
	lockdep_assert_held_read(&bdev->state_rw);
	mutex_lock(&bdev->mms_lock);
	e = barmap_mm_find(bdev, mm);
	if (!e) {
		e = kzalloc(sizeof(*e), GFP_KERNEL);
		if (e) {
			mmgrab(mm);
			e->mm = mm;
			list_add(&e->node, &bdev->mms);
		}
	}
	if (e)
		e->vmas++;
	else
		ret = -ENOMEM;
	mutex_unlock(&bdev->mms_lock);
	return ret;
}

/*
 * A VMA of the device appears (split, mremap, fork) or goes.  Only an mm that
 * ran mmap() is listed: a VMA fork copies is linked before its page tables
 * are, behind its parent in the rmap tree, so a zap that misses the parent's
 * entries cannot miss the copy's.  A count off by an uncounted VMA frees an
 * entry early, which is safe: the mm's next mmap() lists it again, and that
 * mmap() holds the mm's lock against every close() until its VMA is linked.
 */
static void barmap_mm_vma(struct barmap_dev *bdev, struct mm_struct *mm,
			  bool opened)
{
	struct barmap_mm *e;

	mutex_lock(&bdev->mms_lock);
	e = barmap_mm_find(bdev, mm);
	if (e && opened) {
		e->vmas++;
	} else if (e && !--e->vmas) {
		list_del(&e->node);
		mmdrop(e->mm);
		kfree(e);
	}
	mutex_unlock(&bdev->mms_lock);
}

/*
 * A fault that handed out a buffer's page before "dead" was set returned it
 * locked and the core installs its entry before unlocking it: take every
 * such page's lock once.
 */
static void barmap_faults_quiesce(struct barmap_dev *bdev)
{
	struct barmap_buf *buf;
	unsigned long i;

	mutex_lock(&bdev->bufs_lock);
	list_for_each_entry(buf, &bdev->bufs, dev_node) {
		if (buf->kind->kind != BARMAP_BUF_FAULT || !buf->vaddr)
			continue;	/* no page from a fault */
		for (i = 0; i < buf->size >> PAGE_SHIFT; i++) {
			lock_page(buf->pages[i]);
			unlock_page(buf->pages[i]);
		}
	}
	mutex_unlock(&bdev->bufs_lock);
}

/*
 * Revoke every mapping of the dead device.  An mmap() that passed
 * barmap_mmap() before "dead" was set may not have linked its VMA yet (an
 * eager strategy's page tables are already full): it holds its mm's
 * mmap_lock until it has, so take each listed mm's lock once; wait for the
 * faults in flight likewise; then zap.
 */
static void barmap_revoke(struct barmap_dev *bdev)
{
	struct mm_struct *mm;
	struct barmap_mm *e;
	u64 gen;

	/* an mmap() in flight takes state_rw under the mmap_lock taken here */
	lockdep_assert_not_held(&bdev->state_rw);
	mutex_lock(&bdev->mms_lock);
	gen = ++bdev->revoke_gen;
	mutex_unlock(&bdev->mms_lock);
	for (;;) {
		mm = NULL;
		mutex_lock(&bdev->mms_lock);
		list_for_each_entry(e, &bdev->mms, node) {
			if (e->synced != gen) {
				e->synced = gen;
				mm = e->mm;
				mmgrab(mm);
				break;
			}
		}
		mutex_unlock(&bdev->mms_lock);
		if (!mm)
			break;
		mmap_read_lock(mm);
		mmap_read_unlock(mm);
		mmdrop(mm);
	}
	barmap_faults_quiesce(bdev);
	unmap_mapping_range(bdev->inode->i_mapping, 0, 0, 1);
}

/* ---- BAR and reserved mappings: each VMA (also after split or fork) holds its region ---- */

static struct barmap_dev *barmap_vma_dev(struct vm_area_struct *vma)
{
	struct barmap_file *bf = vma->vm_file->private_data;

	return bf->bdev;
}

static struct barmap_region *barmap_vma_region(struct vm_area_struct *vma)
{
	const struct barmap_strategy *st = vma->vm_private_data;

	return barmap_region_of(barmap_vma_dev(vma), st->obj);
}

/* the page of its object where the VMA starts (vm_pgoff carries the id) */
static unsigned long barmap_vma_first_page(struct vm_area_struct *vma)
{
	const struct barmap_strategy *st = vma->vm_private_data;

	return vma->vm_pgoff - st->id;
}

static void barmap_io_vm_open(struct vm_area_struct *vma)
{
	struct barmap_region *r = barmap_vma_region(vma);

	mutex_lock(&r->lock);
	r->users++;
	mutex_unlock(&r->lock);
	barmap_mm_vma(barmap_vma_dev(vma), vma->vm_mm, true);
}

static void barmap_io_vm_close(struct vm_area_struct *vma)
{
	barmap_region_put(barmap_vma_region(vma));
	barmap_mm_vma(barmap_vma_dev(vma), vma->vm_mm, false);
}

/* the PFN a fault of 1 << order pages at vmf maps, or why it cannot (0) */
static vm_fault_t barmap_io_pfn(struct vm_fault *vmf, unsigned int order,
				unsigned long *addr, unsigned long *pfn)
{
	struct vm_area_struct *vma = vmf->vma;
	struct barmap_region *r = barmap_vma_region(vma);
	unsigned long pgoff;

	*addr = vmf->address & ~((PAGE_SIZE << order) - 1);
	pgoff = barmap_vma_first_page(vma) + ((*addr - vma->vm_start) >> PAGE_SHIFT);
	*pfn = PHYS_PFN(r->phys) + pgoff;
	if (order && (*addr < vma->vm_start ||
		      *addr + (PAGE_SIZE << order) > vma->vm_end ||
		      !IS_ALIGNED(*pfn, 1UL << order)))
		return VM_FAULT_FALLBACK;
	if (pgoff + (1UL << order) > PHYS_PFN(r->size))
		return VM_FAULT_SIGBUS;
	return 0;
}

/*
 * Fault-time mapping, as vfio-pci does it: under state_rw, which remove()
 * takes for writing before it zaps, so a PTE is either inserted before the
 * zap (and zapped) or never (SIGBUS).  A PMD where the kernel maps huge
 * PFNs, else the fault falls back to PTEs.
 */
static vm_fault_t barmap_io_insert(struct vm_fault *vmf, unsigned int order)
{
	struct barmap_dev *bdev = barmap_vma_dev(vmf->vma);
	unsigned long addr, pfn;
	vm_fault_t ret = barmap_io_pfn(vmf, order, &addr, &pfn);

	if (ret)
		return ret;
	down_read(&bdev->state_rw);
	if (bdev->dead)
		ret = VM_FAULT_SIGBUS;
	else if (!order)
		ret = vmf_insert_pfn(vmf->vma, addr, pfn);
	else if (order == PMD_SHIFT - PAGE_SHIFT)
		ret = barmap_vmf_insert_pfn_pmd(vmf, pfn,
						vmf->flags & FAULT_FLAG_WRITE);
	else
		ret = VM_FAULT_FALLBACK;
	up_read(&bdev->state_rw);
	return ret;
}

static vm_fault_t barmap_io_fault(struct vm_fault *vmf)
{
	return barmap_io_insert(vmf, 0);
}

/*
 * Debugger access (ptrace PEEK/POKE, /proc/PID/mem, process_vm_readv) to a
 * fault-time mapping: the page may not be mapped yet, so generic_access_phys
 * (which follows the PTE) cannot serve it; the region's pin can.
 */
static int barmap_io_access(struct vm_area_struct *vma, unsigned long addr,
			    void *data, int len, int write)
{
	struct barmap_dev *bdev = barmap_vma_dev(vma);
	struct barmap_region *r = barmap_vma_region(vma);
	unsigned long off = (barmap_vma_first_page(vma) << PAGE_SHIFT) +
			    (addr - vma->vm_start);
	int ret = -EIO;

	if (off >= r->size)
		return -EIO;
	len = min_t(unsigned long, len, r->size - off);
	down_read(&bdev->state_rw);
	if (!bdev->dead && r->pin) {
		if (write)
			memcpy_toio(r->pin + off, data, len);
		else
			memcpy_fromio(data, r->pin + off, len);
		ret = len;
	}
	up_read(&bdev->state_rw);
	return ret;
}

static const struct vm_operations_struct barmap_fault_vm_ops = {
	.open = barmap_io_vm_open,
	.close = barmap_io_vm_close,
	.fault = barmap_io_fault,
	.huge_fault = barmap_huge_op(barmap_io_insert),
	.access = barmap_io_access,
};

/*
 * An eager mapping carries the PAT memtype of its whole range (VM_PAT);
 * unmapping a piece of it would free a memtype that was never reserved, so
 * partial munmap and mremap shrink are refused.  generic_access_phys lets
 * debuggers in, as uio does.  No .fault: after remove() zapped the PTEs an
 * access raises SIGBUS.
 */
static int barmap_remap_vm_may_split(struct vm_area_struct *vma,
				     unsigned long addr)
{
	return -EINVAL;
}

static const struct vm_operations_struct barmap_remap_vm_ops = {
	.open = barmap_io_vm_open,
	.close = barmap_io_vm_close,
	.may_split = barmap_remap_vm_may_split,
#ifdef CONFIG_HAVE_IOREMAP_PROT
	.access = generic_access_phys,
#endif
};

static int barmap_fill_io_remap(struct vm_area_struct *vma,
				struct barmap_region *r, unsigned long len)
{
	return io_remap_pfn_range(vma, vma->vm_start, PHYS_PFN(r->phys), len,
				  vma->vm_page_prot);
}

/*
 * The bug of pitfall_wrong_pfn, made safe: the address as a frame number maps
 * another address, refused when the CPU cannot even address it (an entry
 * with reserved bits set would fault in the kernel, not in the process).
 */
static int barmap_wrong_pfn(struct barmap_region *r, unsigned long *pfn)
{
#ifdef CONFIG_X86
	if (r->phys + r->size > (1ULL << (boot_cpu_data.x86_phys_bits - PAGE_SHIFT)))
		return -EINVAL;
	*pfn = r->phys;
	return 0;
#else
	return -EOPNOTSUPP;
#endif
}

static int barmap_fill_remap(struct vm_area_struct *vma,
			     struct barmap_region *r, unsigned long len)
{
	unsigned long pfn = PHYS_PFN(r->phys);
	int ret = pitfall_wrong_pfn ? barmap_wrong_pfn(r, &pfn) : 0;

	if (ret)
		return ret;
	return remap_pfn_range(vma, vma->vm_start, pfn, len, vma->vm_page_prot);
}

/*
 * vm_iomap_memory() reads vm_pgoff as an offset into the region: with the id
 * in the offset it would map BAR2 from page 4.  Map from the start instead.
 */
static int barmap_fill_iomap(struct vm_area_struct *vma,
			     struct barmap_region *r, unsigned long len)
{
	unsigned long pgoff = vma->vm_pgoff;
	int ret;

	vma->vm_pgoff = 0;
	ret = vm_iomap_memory(vma, r->phys, r->size);
	vma->vm_pgoff = pgoff;
	return ret;
}

static int barmap_mmap_io(struct barmap_file *bf, struct vm_area_struct *vma,
			  const struct barmap_strategy *st, unsigned long len)
{
	struct barmap_region *r = barmap_region_of(bf->bdev, st->obj);
	u32 mode = READ_ONCE(bf->cache_mode);
	int ret;

	lockdep_assert_held_read(&bf->bdev->state_rw);
	barmap_vma_assert_write_locked(vma);
	if (!r)
		return -ENODEV;
	if (len > r->size)
		return -EINVAL;
	ret = barmap_region_get(r, mode);
	if (ret)
		return ret;

	vma->vm_ops = st->vm_ops;
	vma->vm_private_data = (void *)st;
	if (mode == BARMAP_CACHE_WC)
		vma->vm_page_prot = pgprot_writecombine(vma->vm_page_prot);
	else
		vma->vm_page_prot = pgprot_noncached(vma->vm_page_prot);
	barmap_vm_flags_set(vma, VM_IO | VM_PFNMAP | VM_DONTEXPAND |
			    VM_DONTDUMP);
	if (!st->fill)
		return 0;	/* pages come from barmap_io_fault() */
	ret = st->fill(vma, r, len);
	if (ret)
		barmap_region_put(r);
	return ret;
}

/* ---- buffer mappings: every VMA (also after split or fork) holds its buffer ---- */

static void barmap_buf_vm_open(struct vm_area_struct *vma)
{
	struct barmap_buf *buf = vma->vm_private_data;

	atomic_inc(&buf->map_count);
	kref_get(&buf->ref);
	barmap_mm_vma(buf->bdev, vma->vm_mm, true);
}

static void barmap_buf_vm_close(struct vm_area_struct *vma)
{
	struct barmap_buf *buf = vma->vm_private_data;

	barmap_mm_vma(buf->bdev, vma->vm_mm, false);
	atomic_dec(&buf->map_count);
	barmap_buf_put(buf);
}

/* the buffer page a VMA address is (vm_pgoff carries the id) */
static unsigned long barmap_buf_vma_off(struct vm_area_struct *vma,
					unsigned long addr)
{
	struct barmap_buf *buf = vma->vm_private_data;

	return ((vma->vm_pgoff - buf->id) << PAGE_SHIFT) + (addr - vma->vm_start);
}

/*
 * Debugger access to a buffer mapping: PFN-mapped pages have no struct page
 * for GUP to pin, so copy through the kernel's view of the buffer, while the
 * device lives (remove() frees the memory).
 */
static int barmap_buf_vm_access(struct vm_area_struct *vma, unsigned long addr,
				void *data, int len, int write)
{
	struct barmap_buf *buf = vma->vm_private_data;
	struct barmap_dev *bdev = buf->bdev;
	unsigned long off = barmap_buf_vma_off(vma, addr);
	int ret = -EIO;

	if (off >= buf->size)
		return -EIO;
	len = min_t(unsigned long, len, buf->size - off);
	down_read(&bdev->state_rw);
	if (!bdev->dead && buf->vaddr) {
		if (write)
			memcpy(buf->vaddr + off, data, len);
		else
			memcpy(data, buf->vaddr + off, len);
		ret = len;
	}
	up_read(&bdev->state_rw);
	return ret;
}

static const struct vm_operations_struct barmap_buf_vm_ops = {
	.open = barmap_buf_vm_open,
	.close = barmap_buf_vm_close,
	.access = barmap_buf_vm_access,
};

/*
 * BARMAP_BUF_FAULT: the page a fault asks for, referenced, while the device
 * lives.  The core installs the entry after this returns, so the page goes
 * back locked (as the page cache's do): barmap_revoke() takes each page's
 * lock, which waits for an entry this handed out to be installed, then zaps.
 */
static vm_fault_t barmap_buf_fault(struct vm_fault *vmf)
{
	struct vm_area_struct *vma = vmf->vma;
	struct barmap_buf *buf = vma->vm_private_data;
	struct barmap_dev *bdev = buf->bdev;
	unsigned long page = vmf->pgoff - buf->id;
	vm_fault_t ret = VM_FAULT_SIGBUS;

	down_read(&bdev->state_rw);
	if (!bdev->dead && buf->vaddr && page < buf->size >> PAGE_SHIFT) {
		vmf->page = buf->pages[page];
		get_page(vmf->page);
		lock_page(vmf->page);
		ret = VM_FAULT_LOCKED;
	}
	up_read(&bdev->state_rw);
	return ret;
}

static const struct vm_operations_struct barmap_buf_fault_vm_ops = {
	.open = barmap_buf_vm_open,
	.close = barmap_buf_vm_close,
	.fault = barmap_buf_fault,
	.access = barmap_buf_vm_access,
};

static int barmap_mmap_buf(struct barmap_file *bf, struct vm_area_struct *vma,
			   const struct barmap_strategy *st, unsigned long len)
{
	u32 id = vma->vm_pgoff;
	struct barmap_buf *buf;
	int ret = 0;

	lockdep_assert_held_read(&bf->bdev->state_rw);
	barmap_vma_assert_write_locked(vma);
	mutex_lock(&bf->lock);
	buf = bf->bufs[id - barmap_row_id(st)];
	if (!buf || buf->id != id || len > buf->size ||
	    st->kind == BARMAP_BUF_DMABUF) {
		ret = -EINVAL;	/* a dma-buf is mapped through its own fd */
		goto out;
	}

	vma->vm_ops = st->vm_ops;
	vma->vm_private_data = buf;
	barmap_vm_flags_set(vma, VM_DONTEXPAND | VM_DONTDUMP);
	/*
	 * The page offset carried the buffer id; the mmap functions read it
	 * as an offset into the buffer.  Map from the start, then put the id
	 * back so that /proc/PID/maps and the rmap tree show what was asked.
	 */
	if (buf->kind->mmap) {
		vma->vm_pgoff = 0;
		ret = buf->kind->mmap(buf, vma);
		vma->vm_pgoff = id;
	}
	if (ret)
		goto out;
	atomic_inc(&buf->map_count);
	kref_get(&buf->ref);
out:
	mutex_unlock(&bf->lock);
	return ret;
}

/* ---- dma-buf: a buffer's pages as an fd of their own ---- */

struct barmap_dmabuf_attachment {
	struct sg_table sgt;
};

static int barmap_dmabuf_attach(struct dma_buf *dmabuf,
				struct dma_buf_attachment *attach)
{
	struct barmap_buf *buf = dmabuf->priv;
	struct barmap_dmabuf_attachment *a;
	int ret;

	a = kzalloc(sizeof(*a), GFP_KERNEL);
	if (!a)
		return -ENOMEM;
	ret = sg_alloc_table_from_pages(&a->sgt, buf->pages,
					buf->size >> PAGE_SHIFT, 0, buf->size,
					GFP_KERNEL);
	if (ret) {
		kfree(a);
		return ret;
	}
	attach->priv = a;
	return 0;
}

static void barmap_dmabuf_detach(struct dma_buf *dmabuf,
				 struct dma_buf_attachment *attach)
{
	struct barmap_dmabuf_attachment *a = attach->priv;

	sg_free_table(&a->sgt);
	kfree(a);
}

static struct sg_table *barmap_dmabuf_map(struct dma_buf_attachment *attach,
					  enum dma_data_direction dir)
{
	struct barmap_dmabuf_attachment *a = attach->priv;
	int ret = dma_map_sgtable(attach->dev, &a->sgt, dir, 0);

	return ret ? ERR_PTR(ret) : &a->sgt;
}

static void barmap_dmabuf_unmap(struct dma_buf_attachment *attach,
				struct sg_table *sgt,
				enum dma_data_direction dir)
{
	dma_unmap_sgtable(attach->dev, sgt, dir, 0);
}

static void barmap_dmabuf_release(struct dma_buf *dmabuf)
{
	barmap_buf_put(dmabuf->priv);
}

/* as the system heap maps its pages: remap_pfn_range(), no .fault, no .access */
static int barmap_dmabuf_mmap(struct dma_buf *dmabuf,
			      struct vm_area_struct *vma)
{
	struct barmap_buf *buf = dmabuf->priv;

	if (!(vma->vm_flags & VM_MAYSHARE))
		return -EINVAL;
	return remap_pfn_range(vma, vma->vm_start,
			       page_to_pfn(buf->pages[vma->vm_pgoff]),
			       vma->vm_end - vma->vm_start, vma->vm_page_prot);
}

/*
 * DMA_BUF_IOCTL_SYNC: the device's own mapping, while it has one.  Once the
 * device is dead remove() gives its DMA mappings back (after barmap_set_dead(),
 * which waits for this read side): the pages stay the CPU's, nothing to sync.
 */
static int barmap_dmabuf_cpu_access(struct dma_buf *dmabuf,
				    enum dma_data_direction dir, bool begin)
{
	struct barmap_buf *buf = dmabuf->priv;

	down_read(&buf->bdev->state_rw);
	if (!buf->bdev->dead)
		barmap_buf_sync(buf, begin, dir);
	up_read(&buf->bdev->state_rw);
	return 0;
}

static int barmap_dmabuf_begin_cpu(struct dma_buf *dmabuf,
				   enum dma_data_direction dir)
{
	return barmap_dmabuf_cpu_access(dmabuf, dir, true);
}

static int barmap_dmabuf_end_cpu(struct dma_buf *dmabuf,
				 enum dma_data_direction dir)
{
	return barmap_dmabuf_cpu_access(dmabuf, dir, false);
}

static const struct dma_buf_ops barmap_dmabuf_ops = {
	.attach = barmap_dmabuf_attach,
	.detach = barmap_dmabuf_detach,
	.map_dma_buf = barmap_dmabuf_map,
	.unmap_dma_buf = barmap_dmabuf_unmap,
	.release = barmap_dmabuf_release,
	.mmap = barmap_dmabuf_mmap,
	.begin_cpu_access = barmap_dmabuf_begin_cpu,
	.end_cpu_access = barmap_dmabuf_end_cpu,
};

/* ---- the table ---- */

#define BARMAP_IO_ROW(id_, name_, obj_, vm_ops_, fill_) \
	{ .id = (id_), .count = 1, .name = (name_), .obj = (obj_), \
	  .mmap = barmap_mmap_io, .vm_ops = (vm_ops_), .fill = (fill_) }
#define BARMAP_BUF_ROW(kind_, name_, vm_ops_) \
	{ .count = BARMAP_BUF_MAX, .name = (name_), .obj = BARMAP_OBJ_BUF, \
	  .mmap = barmap_mmap_buf, .vm_ops = (vm_ops_), .kind = (kind_) }

static const struct barmap_strategy barmap_strategies[] = {
	BARMAP_IO_ROW(BARMAP_MMAP_ID_BAR, "bar", BARMAP_OBJ_BAR,
		      &barmap_fault_vm_ops, NULL),
	BARMAP_IO_ROW(BARMAP_MMAP_ID_RESERVED, "reserved", BARMAP_OBJ_RESERVED,
		      &barmap_fault_vm_ops, NULL),
	BARMAP_IO_ROW(BARMAP_MMAP_ID_BAR_REMAP, "bar-remap", BARMAP_OBJ_BAR,
		      &barmap_remap_vm_ops, barmap_fill_io_remap),
	BARMAP_IO_ROW(BARMAP_MMAP_ID_RESERVED_REMAP, "reserved-remap",
		      BARMAP_OBJ_RESERVED, &barmap_remap_vm_ops,
		      barmap_fill_remap),
	BARMAP_IO_ROW(BARMAP_MMAP_ID_BAR_IOMAP, "bar-iomap", BARMAP_OBJ_BAR,
		      &barmap_remap_vm_ops, barmap_fill_iomap),
	BARMAP_BUF_ROW(BARMAP_BUF_COHERENT, "dma", &barmap_buf_vm_ops),
	BARMAP_BUF_ROW(BARMAP_BUF_WC, "dma-wc", &barmap_buf_vm_ops),
	BARMAP_BUF_ROW(BARMAP_BUF_PAGES, "dma-pages", &barmap_buf_vm_ops),
	BARMAP_BUF_ROW(BARMAP_BUF_NONCONTIG, "dma-noncontig",
		       &barmap_buf_vm_ops),
	BARMAP_BUF_ROW(BARMAP_BUF_KMALLOC, "ram-remap", &barmap_buf_vm_ops),
	BARMAP_BUF_ROW(BARMAP_BUF_INSERT, "pages-insert", &barmap_buf_vm_ops),
	BARMAP_BUF_ROW(BARMAP_BUF_FAULT, "pages-fault",
		       &barmap_buf_fault_vm_ops),
	BARMAP_BUF_ROW(BARMAP_BUF_VMALLOC, "vmalloc", &barmap_buf_vm_ops),
	BARMAP_BUF_ROW(BARMAP_BUF_DMABUF, "dmabuf", NULL),
};

static const struct barmap_strategy *barmap_strategy(unsigned long id)
{
	const struct barmap_strategy *st;

	for (st = barmap_strategies;
	     st < barmap_strategies + ARRAY_SIZE(barmap_strategies); st++)
		if (id >= barmap_row_id(st) && id - barmap_row_id(st) < st->count)
			return st;
	return NULL;
}

static int barmap_mmap(struct file *filp, struct vm_area_struct *vma)
{
	struct barmap_file *bf = filp->private_data;
	struct barmap_dev *bdev = bf->bdev;
	const struct barmap_strategy *st = barmap_strategy(vma->vm_pgoff);
	unsigned long len = vma->vm_end - vma->vm_start;
	int ret;

	/*
	 * Lock order: a VMA's lock, then state_rw (a fault holds the first when
	 * it takes the second).  Setting a VMA's flags write-locks the VMA, so
	 * the strategy's mmap function finds it held.
	 */
	barmap_vma_start_write(vma);
	down_read(&bdev->state_rw);
	if (bdev->dead)
		ret = -ENODEV;
	else if (!st)
		ret = -EINVAL;
	else if (!(vma->vm_flags & VM_MAYSHARE))
		ret = -EINVAL;	/* MAP_PRIVATE: a COW copy of MMIO is nonsense */
	else
		ret = barmap_mm_track(bdev, vma->vm_mm);
	if (!ret) {
		ret = st->mmap(bf, vma, st, len);
		if (ret)
			barmap_mm_vma(bdev, vma->vm_mm, false);
	}
	up_read(&bdev->state_rw);
	if (ret && st)
		dev_dbg(&bdev->dev, "mmap %s (id %lu, %lu bytes): %d\n",
			st->name, vma->vm_pgoff, len, ret);
	return ret;
}

/* ---- ioctls; user copies happen outside state_rw (mmap_lock nests outside it) ---- */

static long barmap_ioc_info(struct barmap_file *bf, void __user *uarg)
{
	struct barmap_dev *bdev = bf->bdev;
	struct barmap_region *reserved;
	struct barmap_info info = {};

	down_read(&bdev->state_rw);
	if (bdev->dead) {
		up_read(&bdev->state_rw);
		return -ENODEV;
	}
	info.bar_phys = bdev->bar.phys;
	info.bar_size = bdev->bar.size;
	if (reserved_ok) {
		info.reserved_phys = reserved_base;
		info.reserved_size = reserved_size;
	}
	info.caps = ioread32(bdev->regs + BARMAP_REG_CAPS);
	info.version = ioread32(bdev->regs + BARMAP_REG_VERSION);
	info.cache_mode = READ_ONCE(bf->cache_mode);
	info.minor = bdev->minor;
	info.bar_mode = barmap_region_mode(&bdev->bar);
	reserved = barmap_region_of(bdev, BARMAP_OBJ_RESERVED);
	info.reserved_mode = barmap_region_mode(reserved);
	up_read(&bdev->state_rw);

	if (copy_to_user(uarg, &info, sizeof(info)))
		return -EFAULT;
	return 0;
}

static int barmap_free_id(struct barmap_file *bf, u32 id)
{
	struct barmap_buf *buf;
	u32 kind;
	int slot = barmap_buf_slot(id, &kind);

	if (slot < 0)
		return -EINVAL;
	mutex_lock(&bf->lock);
	buf = bf->bufs[slot];
	if (!buf || buf->id != id) {
		mutex_unlock(&bf->lock);
		return -EINVAL;
	}
	if (atomic_read(&buf->map_count)) {
		mutex_unlock(&bf->lock);
		return -EBUSY;
	}
	bf->bufs[slot] = NULL;
	mutex_unlock(&bf->lock);
	barmap_buf_put(buf);
	return 0;
}

static int barmap_free_slot(struct barmap_file *bf)
{
	int i;

	lockdep_assert_held(&bf->lock);
	for (i = 0; i < BARMAP_BUF_MAX; i++)
		if (!bf->bufs[i])
			return i;
	return -ENOSPC;
}

/* a buffer of req's kind with its memory, listed on the device; not yet in a slot */
static struct barmap_buf *barmap_buf_new(struct barmap_dev *bdev,
					 const struct barmap_alloc *req)
{
	struct barmap_buf *buf;
	int ret;

	/* no buffer is listed after remove() gave every one back */
	lockdep_assert_held_read(&bdev->state_rw);
	buf = kzalloc(sizeof(*buf), GFP_KERNEL);
	if (!buf)
		return ERR_PTR(-ENOMEM);
	kref_init(&buf->ref);
	atomic_set(&buf->map_count, 0);
	INIT_LIST_HEAD(&buf->dev_node);
	buf->bdev = bdev;
	buf->kind = &barmap_buf_kinds[req->kind];
	buf->size = PAGE_ALIGN(req->size);
	ret = buf->kind->alloc(buf);
	if (ret) {
		kfree(buf);
		return ERR_PTR(ret);
	}
	buf->dma_mapped = true;
	get_device(&bdev->dev);
	mutex_lock(&bdev->bufs_lock);
	list_add_tail(&buf->dev_node, &bdev->bufs);
	mutex_unlock(&bdev->bufs_lock);
	return buf;
}

static long barmap_ioc_alloc(struct barmap_file *bf, void __user *uarg)
{
	struct barmap_dev *bdev = bf->bdev;
	struct barmap_alloc req;
	struct barmap_buf *buf;
	int slot;

	if (copy_from_user(&req, uarg, sizeof(req)))
		return -EFAULT;
	if (req.kind >= BARMAP_BUF_KINDS || !req.size ||
	    req.size > BARMAP_BUF_SIZE_MAX)
		return -EINVAL;

	down_read(&bdev->state_rw);
	if (bdev->dead) {
		up_read(&bdev->state_rw);
		return -ENODEV;
	}
	mutex_lock(&bf->lock);
	slot = barmap_free_slot(bf);
	mutex_unlock(&bf->lock);
	if (slot < 0) {
		up_read(&bdev->state_rw);
		return slot;
	}
	buf = barmap_buf_new(bdev, &req);
	if (IS_ERR(buf)) {
		up_read(&bdev->state_rw);
		return PTR_ERR(buf);
	}
	mutex_lock(&bf->lock);
	slot = barmap_free_slot(bf);	/* again: the lock was dropped */
	if (slot >= 0) {
		buf->id = BARMAP_BUF_ID(req.kind, slot);
		bf->bufs[slot] = buf;
	}
	mutex_unlock(&bf->lock);
	up_read(&bdev->state_rw);
	if (slot < 0) {
		barmap_buf_put(buf);
		return slot;
	}

	req.id = buf->id;
	req.dma_addr = buf->dma_addr;
	if (copy_to_user(uarg, &req, sizeof(req))) {
		barmap_free_id(bf, req.id);
		return -EFAULT;
	}
	return 0;
}

static long barmap_ioc_free(struct barmap_file *bf, void __user *uarg)
{
	struct barmap_dev *bdev = bf->bdev;
	u32 id;
	int ret;

	if (get_user(id, (u32 __user *)uarg))
		return -EFAULT;

	down_read(&bdev->state_rw);
	ret = bdev->dead ? -ENODEV : barmap_free_id(bf, id);
	up_read(&bdev->state_rw);
	return ret;
}

static long barmap_ioc_set_cache(struct barmap_file *bf, void __user *uarg)
{
	struct barmap_dev *bdev = bf->bdev;
	u32 mode;
	int ret = 0;

	if (get_user(mode, (u32 __user *)uarg))
		return -EFAULT;
	if (mode != BARMAP_CACHE_UC && mode != BARMAP_CACHE_WC)
		return -EINVAL;

	down_read(&bdev->state_rw);
	if (bdev->dead)
		ret = -ENODEV;
	else
		WRITE_ONCE(bf->cache_mode, mode);
	up_read(&bdev->state_rw);
	return ret;
}

/* One transfer of the engine. */
static int barmap_dma_run(struct barmap_dev *bdev, struct barmap_buf *buf,
			  dma_addr_t bus, u64 bar_off, u64 len, u32 dir,
			  u32 timeout_ms, u32 *status)
{
	void __iomem *regs = bdev->regs;
	unsigned long timeout = msecs_to_jiffies(timeout_ms ?:
						 BARMAP_DMA_TIMEOUT_MS);
	unsigned long drain;
	u32 cmd;

	lockdep_assert_held(&bdev->dma_lock);
	lockdep_assert_held_read(&bdev->state_rw);
	reinit_completion(&bdev->dma_done);
	WRITE_ONCE(bdev->dma_status, 0);

	iowrite32(lower_32_bits(bus), regs + BARMAP_REG_DMA_BUS_LO);
	iowrite32(upper_32_bits(bus), regs + BARMAP_REG_DMA_BUS_HI);
	iowrite32(lower_32_bits(bar_off), regs + BARMAP_REG_DMA_OFF_LO);
	iowrite32(upper_32_bits(bar_off), regs + BARMAP_REG_DMA_OFF_HI);
	iowrite32(len, regs + BARMAP_REG_DMA_LEN);
	cmd = BARMAP_DMA_CMD_START | BARMAP_DMA_CMD_IRQ;
	if (dir == BARMAP_DMA_FROM_DEV)
		cmd |= BARMAP_DMA_CMD_FROM_DEV;
	atomic_inc(&bdev->counters.dma_count);
	iowrite32(cmd, regs + BARMAP_REG_DMA_CMD);

	if (wait_for_completion_timeout(&bdev->dma_done, timeout)) {
		*status = READ_ONCE(bdev->dma_status);
		return (*status & BARMAP_DMA_STATUS_ERROR) ? -EIO : 0;
	}

	/*
	 * No completion interrupt.  The transfer may still run; the buffer
	 * must not be freed under it, so wait for BUSY to clear and, if it
	 * never does, keep the buffer allocated for good.
	 */
	atomic_inc(&bdev->counters.dma_timeouts);
	drain = jiffies + msecs_to_jiffies(BARMAP_DMA_DRAIN_MS);
	do {
		*status = ioread32(regs + BARMAP_REG_DMA_STATUS);
		if (!(*status & BARMAP_DMA_STATUS_BUSY))
			break;
		usleep_range(100, 200);
	} while (time_before(jiffies, drain));
	if (*status & BARMAP_DMA_STATUS_BUSY) {
		dev_warn(&bdev->dev, "DMA stuck busy, buffer %u leaked\n",
			 buf->id);
		buf->leaked = true;	/* its memory is never freed */
	}
	/*
	 * The cause of the lost interrupt is still pending in IRQ_STATUS; an
	 * MSI is sent only when a cause becomes pending, so acknowledge it or
	 * no later transfer would ever interrupt.
	 */
	iowrite32(BARMAP_IRQ_DMA_DONE | BARMAP_IRQ_DMA_ERROR,
		  regs + BARMAP_REG_IRQ_ACK);
	return -ETIMEDOUT;
}

/*
 * A request over the buffer's bus segments, one transfer per contiguous
 * piece, the buffer handed to the device before and back to the CPU after.
 */
static int barmap_dma_request(struct barmap_dev *bdev, struct barmap_buf *buf,
			      const struct barmap_dma *req, u32 *status)
{
	enum dma_data_direction dir = req->dir == BARMAP_DMA_TO_DEV ?
		DMA_TO_DEVICE : DMA_FROM_DEVICE;
	u64 done = 0, contig, len;
	dma_addr_t bus;
	int ret = 0;

	if (!buf->dma_mapped || buf->leaked)
		return -EINVAL;
	barmap_buf_sync(buf, false, dir);
	while (!ret && done < req->len) {
		bus = barmap_buf_bus(buf, req->buf_off + done, &contig);
		len = min(req->len - done, contig);
		if (!len) {
			ret = -EINVAL;
			break;
		}
		ret = barmap_dma_run(bdev, buf, bus, req->bar_off + done, len,
				     req->dir, req->timeout_ms, status);
		done += len;
	}
	barmap_buf_sync(buf, true, dir);
	return ret;
}

static long barmap_ioc_dma(struct barmap_file *bf, void __user *uarg)
{
	struct barmap_dev *bdev = bf->bdev;
	struct barmap_buf *buf = NULL;
	struct barmap_dma req;
	u32 status = 0;
	int ret;

	if (copy_from_user(&req, uarg, sizeof(req)))
		return -EFAULT;
	if (req.dir != BARMAP_DMA_TO_DEV && req.dir != BARMAP_DMA_FROM_DEV)
		return -EINVAL;
	if (!req.len || req.len > BARMAP_DMA_MAX_LEN)
		return -EINVAL;
	if (req.timeout_ms > BARMAP_DMA_TIMEOUT_MAX_MS)
		return -EINVAL;

	down_read(&bdev->state_rw);
	if (bdev->dead) {
		ret = -ENODEV;
		goto out_unlock;
	}
	if (req.bar_off > bdev->bar.size ||
	    req.len > bdev->bar.size - req.bar_off) {
		ret = -EINVAL;
		goto out_unlock;
	}
	buf = barmap_buf_get(bf, req.id);
	if (!buf || req.buf_off > buf->size ||
	    req.len > buf->size - req.buf_off) {
		ret = -EINVAL;
		goto out_unlock;
	}

	mutex_lock(&bdev->dma_lock);
	ret = barmap_dma_request(bdev, buf, &req, &status);
	mutex_unlock(&bdev->dma_lock);

out_unlock:
	up_read(&bdev->state_rw);
	if (buf)
		barmap_buf_put(buf);
	if (ret && ret != -EIO && ret != -ETIMEDOUT)
		return ret;

	/* The status is copied out on success, -EIO and -ETIMEDOUT. */
	req.status = status;
	if (copy_to_user(uarg, &req, sizeof(req)))
		return -EFAULT;
	return ret;
}

static long barmap_ioc_sync(struct barmap_file *bf, void __user *uarg)
{
	struct barmap_dev *bdev = bf->bdev;
	struct barmap_buf *buf;
	struct barmap_sync req;
	enum dma_data_direction dir;
	int ret = 0;

	if (copy_from_user(&req, uarg, sizeof(req)))
		return -EFAULT;
	if (req.flags & ~(BARMAP_SYNC_RW | BARMAP_SYNC_END) ||
	    !(req.flags & BARMAP_SYNC_RW))
		return -EINVAL;
	dir = (req.flags & BARMAP_SYNC_RW) == BARMAP_SYNC_RW ? DMA_BIDIRECTIONAL :
	      (req.flags & BARMAP_SYNC_READ) ? DMA_FROM_DEVICE : DMA_TO_DEVICE;

	down_read(&bdev->state_rw);
	buf = bdev->dead ? NULL : barmap_buf_get(bf, req.id);
	if (!buf)
		ret = bdev->dead ? -ENODEV : -EINVAL;
	else
		barmap_buf_sync(buf, !(req.flags & BARMAP_SYNC_END), dir);
	up_read(&bdev->state_rw);
	if (buf)
		barmap_buf_put(buf);
	return ret;
}

static long barmap_ioc_export(struct barmap_file *bf, void __user *uarg)
{
	DEFINE_DMA_BUF_EXPORT_INFO(info);
	struct barmap_dev *bdev = bf->bdev;
	struct barmap_export req;
	struct dma_buf *dmabuf;
	struct barmap_buf *buf;
	int fd;

	if (copy_from_user(&req, uarg, sizeof(req)))
		return -EFAULT;
	down_read(&bdev->state_rw);
	buf = bdev->dead ? NULL : barmap_buf_get(bf, req.id);
	up_read(&bdev->state_rw);
	if (!buf)
		return bdev->dead ? -ENODEV : -EINVAL;
	if (buf->kind->kind != BARMAP_BUF_DMABUF) {
		barmap_buf_put(buf);
		return -EINVAL;
	}
	info.ops = &barmap_dmabuf_ops;
	info.size = buf->size;
	info.flags = O_RDWR;
	info.priv = buf;	/* the reference barmap_buf_get() took */
	dmabuf = dma_buf_export(&info);
	if (IS_ERR(dmabuf)) {
		barmap_buf_put(buf);
		return PTR_ERR(dmabuf);
	}
	fd = dma_buf_fd(dmabuf, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		dma_buf_put(dmabuf);	/* releases the reference */
		return fd;
	}
	req.fd = fd;
	if (copy_to_user(uarg, &req, sizeof(req)))
		return -EFAULT;	/* the fd stays installed, as with any fd */
	return 0;
}

/* the memory type a page-table entry gives: x86 PAT index, arm64 AttrIndx */
static u32 barmap_memtype(u64 entry, bool leaf_large)
{
#ifdef CONFIG_X86
	static const u32 pat_types[8] = {
		[0] = BARMAP_MEMTYPE_UC, [1] = BARMAP_MEMTYPE_WC,
		[4] = BARMAP_MEMTYPE_WT, [5] = BARMAP_MEMTYPE_WP,
		[6] = BARMAP_MEMTYPE_WB, [7] = BARMAP_MEMTYPE_UC_MINUS,
	};
	u64 pat_bit = leaf_large ? _PAGE_PAT_LARGE : _PAGE_PAT;
	unsigned int idx = (entry & pat_bit ? 4 : 0) +
			   (entry & _PAGE_PCD ? 2 : 0) + (entry & _PAGE_PWT ? 1 : 0);
	u64 pat;

	/* the PAT MSR as this CPU has it: what each index means */
	rdmsrl(MSR_IA32_CR_PAT, pat);
	return pat_types[(pat >> (idx * 8)) & 7] ?: BARMAP_MEMTYPE_UNKNOWN;
#elif defined(CONFIG_ARM64)
	switch ((entry & PTE_ATTRINDX_MASK) >> 2) {
	case MT_NORMAL:
		return BARMAP_MEMTYPE_NORMAL;
	case MT_NORMAL_TAGGED:
		return BARMAP_MEMTYPE_NORMAL_TAGGED;
	case MT_NORMAL_NC:
		return BARMAP_MEMTYPE_NORMAL_NC;
	case MT_DEVICE_nGnRnE:
		return BARMAP_MEMTYPE_DEVICE_NGNRNE;
	case MT_DEVICE_nGnRE:
		return BARMAP_MEMTYPE_DEVICE_NGNRE;
	}
	return BARMAP_MEMTYPE_UNKNOWN;
#else
	return BARMAP_MEMTYPE_UNKNOWN;
#endif
}

/* walk mm's page tables to addr */
static void barmap_walk(struct mm_struct *mm, struct barmap_pte *out)
{
	unsigned long addr = out->addr;
	pgd_t *pgd = pgd_offset(mm, addr);
	p4d_t *p4d;
	pud_t *pud, pudv;
	pmd_t *pmd, pmdv;
	pte_t *ptep, ptev;

	mmap_assert_locked(mm);
	if (pgd_none(*pgd) || pgd_bad(*pgd))
		return;
	p4d = p4d_offset(pgd, addr);
	if (p4d_none(*p4d) || p4d_bad(*p4d))
		return;
	pud = pud_offset(p4d, addr);
	pudv = READ_ONCE(*pud);
	if (pud_none(pudv))
		return;
	if (pud_leaf(pudv)) {
		out->level = BARMAP_PTE_LEVEL_PUD;
		out->entry = pud_val(pudv);
		out->pfn = pud_pfn(pudv) + ((addr & ~PUD_MASK) >> PAGE_SHIFT);
		out->flags |= pud_write(pudv) ? BARMAP_PTE_WRITE : 0;
		out->memtype = barmap_memtype(out->entry, true);
		return;
	}
	pmd = pmd_offset(pud, addr);
	pmdv = READ_ONCE(*pmd);
	if (pmd_none(pmdv))
		return;
	if (pmd_leaf(pmdv)) {
		out->level = BARMAP_PTE_LEVEL_PMD;
		out->entry = pmd_val(pmdv);
		out->pfn = pmd_pfn(pmdv) + ((addr & ~PMD_MASK) >> PAGE_SHIFT);
		out->flags |= pmd_write(pmdv) ? BARMAP_PTE_WRITE : 0;
		out->memtype = barmap_memtype(out->entry, true);
		return;
	}
	if (pmd_bad(pmdv))
		return;
	/* a table khugepaged retracts is freed after an RCU grace period */
	rcu_read_lock();
	ptep = pte_offset_kernel(&pmdv, addr);
	ptev = READ_ONCE(*ptep);
	rcu_read_unlock();
	if (!pte_present(ptev))
		return;
	out->level = BARMAP_PTE_LEVEL_PTE;
	out->entry = pte_val(ptev);
	out->pfn = pte_pfn(ptev);
	out->flags |= pte_write(ptev) ? BARMAP_PTE_WRITE : 0;
	out->flags |= pte_special(ptev) ? BARMAP_PTE_SPECIAL : 0;
	out->memtype = barmap_memtype(out->entry, false);
}

/* the mm of process pid (0: the caller), referenced, or NULL */
static struct mm_struct *barmap_mm_of(u32 pid)
{
	struct task_struct *task;
	struct mm_struct *mm;
	struct pid *p;

	if (!pid) {
		mmget(current->mm);
		return current->mm;
	}
	p = find_get_pid(pid);
	task = p ? get_pid_task(p, PIDTYPE_PID) : NULL;
	put_pid(p);
	if (!task)
		return NULL;
	mm = get_task_mm(task);
	put_task_struct(task);
	return mm;
}

static long barmap_ioc_pte(struct barmap_file *bf, void __user *uarg)
{
	struct barmap_pte req;
	struct mm_struct *mm;
	long ret = 0;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;	/* a PFN, as /proc/PID/pagemap gives it to root only */
	if (copy_from_user(&req, uarg, sizeof(req)))
		return -EFAULT;
	mm = barmap_mm_of(req.pid);
	if (!mm)
		return -ESRCH;
	req.entry = 0;
	req.pfn = 0;
	req.level = BARMAP_PTE_LEVEL_NONE;
	req.memtype = BARMAP_MEMTYPE_NONE;
	req.flags = 0;
	if (mmap_read_lock_killable(mm)) {
		mmput(mm);
		return -EINTR;
	}
	if (find_vma_intersection(mm, req.addr, req.addr + 1))
		barmap_walk(mm, &req);
	else
		ret = -EFAULT;
	mmap_read_unlock(mm);
	mmput(mm);
	if (!ret && copy_to_user(uarg, &req, sizeof(req)))
		ret = -EFAULT;
	return ret;
}

static long barmap_ioctl(struct file *filp, unsigned int cmd,
			 unsigned long arg)
{
	struct barmap_file *bf = filp->private_data;
	void __user *uarg = (void __user *)arg;
	/* what changes device or buffer state needs a file open for writing */
	bool writable = filp->f_mode & FMODE_WRITE;

	switch (cmd) {
	case BARMAP_IOC_INFO:
		return barmap_ioc_info(bf, uarg);
	case BARMAP_IOC_PTE:
		return barmap_ioc_pte(bf, uarg);
	case BARMAP_IOC_ALLOC:
		return writable ? barmap_ioc_alloc(bf, uarg) : -EBADF;
	case BARMAP_IOC_FREE:
		return writable ? barmap_ioc_free(bf, uarg) : -EBADF;
	case BARMAP_IOC_DMA:
		return writable ? barmap_ioc_dma(bf, uarg) : -EBADF;
	case BARMAP_IOC_SET_CACHE:
		return writable ? barmap_ioc_set_cache(bf, uarg) : -EBADF;
	case BARMAP_IOC_SYNC:
		return writable ? barmap_ioc_sync(bf, uarg) : -EBADF;
	case BARMAP_IOC_EXPORT:
		return writable ? barmap_ioc_export(bf, uarg) : -EBADF;
	default:
		return -ENOTTY;
	}
}

static int barmap_open(struct inode *inode, struct file *filp)
{
	struct barmap_dev *bdev = container_of(inode->i_cdev,
					       struct barmap_dev, cdev);
	struct barmap_file *bf;

	bf = kzalloc(sizeof(*bf), GFP_KERNEL);
	if (!bf)
		return -ENOMEM;
	mutex_init(&bf->lock);
	bf->bdev = bdev;
	bf->filp = filp;
	bf->cache_mode = BARMAP_CACHE_UC;

	down_read(&bdev->state_rw);
	if (bdev->dead) {
		up_read(&bdev->state_rw);
		kfree(bf);
		return -ENODEV;
	}
	get_device(&bdev->dev);
	mutex_lock(&bdev->files_lock);
	list_add_tail(&bf->node, &bdev->files);
	mutex_unlock(&bdev->files_lock);
	up_read(&bdev->state_rw);

	filp->private_data = bf;
	filp->f_mapping = bdev->inode->i_mapping;
	return 0;
}

/* Runs only when no VMA is left: every mapping holds a file reference. */
static int barmap_release(struct inode *inode, struct file *filp)
{
	struct barmap_file *bf = filp->private_data;
	struct barmap_dev *bdev = bf->bdev;

	mutex_lock(&bdev->files_lock);
	list_del(&bf->node);
	mutex_unlock(&bdev->files_lock);
	barmap_file_drop_bufs(bf);
	mutex_destroy(&bf->lock);
	kfree(bf);
	put_device(&bdev->dev);
	return 0;
}

/*
 * Place a mapping so that its object's start, not the mmap offset (which
 * carries the id), is 2 MiB aligned: with the id, every row but id 0 landed a
 * page off and could never take a PMD.  Installed where PMDs map.
 */
static unsigned long __maybe_unused
barmap_get_unmapped_area(struct file *filp, unsigned long addr,
			 unsigned long len, unsigned long pgoff,
			 unsigned long flags)
{
	const struct barmap_strategy *st = barmap_strategy(pgoff);
	unsigned long obj_pgoff = st ? pgoff - barmap_row_id(st) : pgoff;

	return barmap_thp_get_unmapped_area(filp, addr, len, obj_pgoff, flags);
}

static const struct file_operations barmap_fops = {
	.owner = THIS_MODULE,
	.open = barmap_open,
	.release = barmap_release,
	.mmap = barmap_mmap,
	/* a BAR mapping at a 2 MiB aligned address can take PMDs */
	.get_unmapped_area = barmap_huge_op(barmap_get_unmapped_area),
	.unlocked_ioctl = barmap_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

/* sysfs: /sys/class/barmap/barmapN/{irq_mode,irq_count,...} */

static ssize_t irq_mode_show(struct device *dev, struct device_attribute *attr,
			     char *buf)
{
	return sysfs_emit(buf, "%s\n", to_barmap_dev(dev)->msi ? "msi" : "intx");
}
static DEVICE_ATTR_RO(irq_mode);

/* a read-only file per field of struct barmap_counters */
struct barmap_counter_attr {
	struct device_attribute attr;
	size_t offset;			/* of the atomic_t in struct barmap_counters */
};

static ssize_t barmap_counter_show(struct device *dev,
				   struct device_attribute *attr, char *buf)
{
	size_t off = container_of(attr, struct barmap_counter_attr, attr)->offset;
	atomic_t *counter = (void *)&to_barmap_dev(dev)->counters + off;

	return sysfs_emit(buf, "%d\n", atomic_read(counter));
}

#define BARMAP_COUNTER_ATTR(field)					\
	struct barmap_counter_attr barmap_counter_##field = {		\
		.attr = { .attr = { .name = #field, .mode = 0444 },	\
			  .show = barmap_counter_show },		\
		.offset = offsetof(struct barmap_counters, field),	\
	}

static BARMAP_COUNTER_ATTR(irq_count);
static BARMAP_COUNTER_ATTR(dma_count);
static BARMAP_COUNTER_ATTR(dma_timeouts);

static struct attribute *barmap_attrs[] = {
	&dev_attr_irq_mode.attr,
	&barmap_counter_irq_count.attr.attr,
	&barmap_counter_dma_count.attr.attr,
	&barmap_counter_dma_timeouts.attr.attr,
	NULL,
};
ATTRIBUTE_GROUPS(barmap);

/* PCI */

static irqreturn_t barmap_irq(int irq, void *data)
{
	struct barmap_dev *bdev = data;
	u32 pending;

	pending = ioread32(bdev->regs + BARMAP_REG_IRQ_STATUS);
	if (!pending || pending == ~0U)
		return IRQ_NONE;	/* shared INTx, or the device is gone */
	iowrite32(pending, bdev->regs + BARMAP_REG_IRQ_ACK);
	atomic_inc(&bdev->counters.irq_count);
	if (pending & (BARMAP_IRQ_DMA_DONE | BARMAP_IRQ_DMA_ERROR)) {
		WRITE_ONCE(bdev->dma_status,
			   ioread32(bdev->regs + BARMAP_REG_DMA_STATUS));
		complete(&bdev->dma_done);
	}
	return IRQ_HANDLED;
}

static void barmap_dev_release(struct device *dev)
{
	struct barmap_dev *bdev = to_barmap_dev(dev);

	ida_free(&barmap_ida, bdev->minor);
	pci_dev_put(bdev->pdev);
	if (bdev->inode)
		iput(bdev->inode);
	mutex_destroy(&bdev->bar.lock);
	kfree(bdev);
}

static void barmap_release_bar(void *data)
{
	struct pci_dev *pdev = data;

	release_mem_region(pci_resource_start(pdev, BARMAP_MEM_BAR),
			   pci_resource_len(pdev, BARMAP_MEM_BAR));
}

/*
 * The probe's steps, in order; each returns 0 or -errno.  The PCI ones are
 * managed (pcim_*, devm_*); from barmap_dev_alloc() on, each is undone by
 * its counterpart in remove() and by the probe's one unwind path.
 */

/* the function enabled, BAR0 mapped, BAR2 claimed, DMA mask, bus master */
static int barmap_pci_setup(struct pci_dev *pdev)
{
	struct device *dev = &pdev->dev;
	unsigned long flags;
	int ret;

	ret = pcim_enable_device(pdev);
	if (ret)
		return dev_err_probe(dev, ret, "cannot enable device\n");

	ret = pcim_iomap_regions(pdev, BIT(BARMAP_REG_BAR), DRV_NAME);
	if (ret)
		return dev_err_probe(dev, ret, "cannot map BAR%d\n",
				     BARMAP_REG_BAR);
	if (pci_resource_len(pdev, BARMAP_REG_BAR) < BARMAP_REG_BAR_SIZE)
		return dev_err_probe(dev, -ENODEV, "BAR%d too small\n",
				     BARMAP_REG_BAR);

	/*
	 * BAR2 is only mapped to userspace, by this driver alone: claimed
	 * exclusive, so /dev/mem and sysfs resource2[_wc] cannot map it with
	 * another cache mode.
	 */
	flags = pci_resource_flags(pdev, BARMAP_MEM_BAR);
	if (!(flags & IORESOURCE_MEM) ||
	    pci_resource_len(pdev, BARMAP_MEM_BAR) < BARMAP_MEM_SIZE_MIN ||
	    !PAGE_ALIGNED(pci_resource_start(pdev, BARMAP_MEM_BAR)) ||
	    !PAGE_ALIGNED(pci_resource_len(pdev, BARMAP_MEM_BAR)))
		return dev_err_probe(dev, -ENODEV, "BAR%d unusable\n",
				     BARMAP_MEM_BAR);
	if (!request_mem_region_exclusive(pci_resource_start(pdev, BARMAP_MEM_BAR),
					  pci_resource_len(pdev, BARMAP_MEM_BAR),
					  DRV_NAME))
		return dev_err_probe(dev, -EBUSY, "cannot claim BAR%d\n",
				     BARMAP_MEM_BAR);
	ret = devm_add_action_or_reset(dev, barmap_release_bar, pdev);
	if (ret)
		return ret;

	ret = dma_set_mask_and_coherent(dev, DMA_BIT_MASK(64));
	if (ret)
		ret = dma_set_mask_and_coherent(dev, DMA_BIT_MASK(32));
	if (ret)
		return dev_err_probe(dev, ret, "no usable DMA mask\n");

	pci_set_master(pdev);
	return 0;
}

static void __iomem *barmap_regs(struct pci_dev *pdev)
{
	return pcim_iomap_table(pdev)[BARMAP_REG_BAR];
}

/* a barmap: its magic, and a MEM_SIZE register that agrees with BAR2 */
static int barmap_check_id(struct pci_dev *pdev)
{
	void __iomem *regs = barmap_regs(pdev);
	resource_size_t bar_size = pci_resource_len(pdev, BARMAP_MEM_BAR);
	u32 magic = ioread32(regs + BARMAP_REG_ID);
	u64 mem_size;

	if (magic != BARMAP_ID_MAGIC)
		return dev_err_probe(&pdev->dev, -ENODEV, "bad magic %#x\n",
				     magic);
	mem_size = ioread32(regs + BARMAP_REG_MEM_SIZE_LO) |
		   (u64)ioread32(regs + BARMAP_REG_MEM_SIZE_HI) << 32;
	if (mem_size != bar_size)
		dev_warn(&pdev->dev, "MEM_SIZE %#llx but BAR%d is %pa bytes\n",
			 mem_size, BARMAP_MEM_BAR, &bar_size);
	return 0;
}

/* one vector, MSI or INTx (freed by pcim at the driver's detach) */
static int barmap_irq_vectors(struct pci_dev *pdev)
{
	int ret = pci_alloc_irq_vectors(pdev, 1, 1,
					PCI_IRQ_MSI | BARMAP_PCI_IRQ_INTX);

	if (ret < 0)
		return dev_err_probe(&pdev->dev, ret, "no interrupt\n");
	return 0;
}

/*
 * The state and the class device, initialized but not added, with its
 * minor; from here on, put_device() frees bdev and the minor.
 */
static struct barmap_dev *barmap_dev_alloc(struct pci_dev *pdev)
{
	struct barmap_dev *bdev;
	int minor;

	minor = ida_alloc_max(&barmap_ida, BARMAP_MAX_DEVS - 1, GFP_KERNEL);
	if (minor < 0)
		return ERR_PTR(minor);
	bdev = kzalloc(sizeof(*bdev), GFP_KERNEL);
	if (!bdev) {
		ida_free(&barmap_ida, minor);
		return ERR_PTR(-ENOMEM);
	}
	bdev->pdev = pci_dev_get(pdev);
	bdev->regs = barmap_regs(pdev);
	bdev->minor = minor;
	bdev->bar.phys = pci_resource_start(pdev, BARMAP_MEM_BAR);
	bdev->bar.size = pci_resource_len(pdev, BARMAP_MEM_BAR);
	mutex_init(&bdev->bar.lock);
	bdev->version = ioread32(bdev->regs + BARMAP_REG_VERSION);
	bdev->msi = pdev->msi_enabled;
	bdev->irq = pci_irq_vector(pdev, 0);
	init_rwsem(&bdev->state_rw);
	mutex_init(&bdev->files_lock);
	INIT_LIST_HEAD(&bdev->files);
	mutex_init(&bdev->bufs_lock);
	INIT_LIST_HEAD(&bdev->bufs);
	mutex_init(&bdev->mms_lock);
	INIT_LIST_HEAD(&bdev->mms);
	mutex_init(&bdev->dma_lock);
	init_completion(&bdev->dma_done);

	device_initialize(&bdev->dev);
	bdev->dev.class = barmap_class;
	bdev->dev.parent = &pdev->dev;
	bdev->dev.devt = MKDEV(MAJOR(barmap_devt), minor);
	bdev->dev.groups = barmap_groups;
	bdev->dev.release = barmap_dev_release;
	return bdev;
}

/* barmapN, and the inode whose address_space every open file shares */
static int barmap_dev_name(struct barmap_dev *bdev)
{
	struct inode *inode;
	int ret;

	ret = dev_set_name(&bdev->dev, DRV_NAME "%d", bdev->minor);
	if (ret)
		return ret;
	inode = alloc_anon_inode(barmap_mnt->mnt_sb);
	if (IS_ERR(inode))
		return PTR_ERR(inode);
	bdev->inode = inode;	/* barmap_dev_release() puts it */
	return 0;
}

/* the interrupt, with every cause acknowledged first and unmasked after */
static int barmap_irq_setup(struct barmap_dev *bdev)
{
	void __iomem *regs = bdev->regs;
	int ret;

	iowrite32(0, regs + BARMAP_REG_IRQ_MASK);
	iowrite32(BARMAP_IRQ_ALL, regs + BARMAP_REG_IRQ_ACK);
	ret = request_irq(bdev->irq, barmap_irq, IRQF_SHARED,
			  dev_name(&bdev->dev), bdev);
	if (ret)
		return ret;
	iowrite32(BARMAP_IRQ_ALL, regs + BARMAP_REG_IRQ_MASK);
	return 0;
}

static void barmap_irq_teardown(struct barmap_dev *bdev)
{
	iowrite32(0, bdev->regs + BARMAP_REG_IRQ_MASK);
	free_irq(bdev->irq, bdev);
}

/* /dev/barmapN and the class device: the last step, users may come */
static int barmap_cdev_add(struct barmap_dev *bdev)
{
	cdev_init(&bdev->cdev, &barmap_fops);
	bdev->cdev.owner = THIS_MODULE;
	return cdev_device_add(&bdev->cdev, &bdev->dev);
}

static void barmap_cdev_del(struct barmap_dev *bdev)
{
	cdev_device_del(&bdev->cdev, &bdev->dev);
}

static void barmap_dt_dma_pool_release(void *dev)
{
	of_reserved_mem_device_release(dev);
}

/*
 * arm64: a shared-dma-pool the device's device tree node names in memory-region
 * backs its coherent buffers (dma_alloc_coherent allocates from it).
 */
static int barmap_dt_dma_pool(struct pci_dev *pdev)
{
	struct device *dev = &pdev->dev;
	int ret;

	if (!dev->of_node || !of_find_property(dev->of_node, "memory-region", NULL))
		return 0;
	ret = of_reserved_mem_device_init(dev);
	if (ret)
		return dev_err_probe(dev, ret, "memory-region\n");
	dev_info(dev, "coherent buffers from the device tree's memory-region\n");
	return devm_add_action_or_reset(dev, barmap_dt_dma_pool_release, dev);
}

static int barmap_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct barmap_dev *bdev;
	int ret;

	ret = barmap_pci_setup(pdev);
	if (!ret)
		ret = barmap_check_id(pdev);
	if (!ret)
		ret = barmap_dt_dma_pool(pdev);
	if (!ret)
		ret = barmap_irq_vectors(pdev);
	if (ret)
		return ret;	/* managed: undone by the driver core */

	bdev = barmap_dev_alloc(pdev);
	if (IS_ERR(bdev))
		return PTR_ERR(bdev);
	ret = barmap_dev_name(bdev);
	if (ret)
		goto err_put;
	ret = barmap_irq_setup(bdev);
	if (ret)
		goto err_put;
	ret = barmap_cdev_add(bdev);
	if (ret)
		goto err_irq;

	pci_set_drvdata(pdev, bdev);
	dev_info(&pdev->dev, "%s: BAR%d %pa+%pa, %s irq %d, version %#x\n",
		 dev_name(&bdev->dev), BARMAP_MEM_BAR, &bdev->bar.phys,
		 &bdev->bar.size, bdev->msi ? "MSI" : "INTx", bdev->irq,
		 bdev->version);
	return 0;

err_irq:
	barmap_irq_teardown(bdev);
err_put:
	put_device(&bdev->dev);
	return ret;
}

/* The steps of remove() after the cdev is gone, in their order. */

/* waits for every ioctl, mmap and fault in flight, including a DMA */
static void barmap_set_dead(struct barmap_dev *bdev)
{
	down_write(&bdev->state_rw);
	bdev->dead = true;
	up_write(&bdev->state_rw);
}

/* the BAR's memory type, held while it was mapped, goes with the mappings */
static void barmap_bar_unpin(struct barmap_dev *bdev)
{
	mutex_lock(&bdev->bar.lock);
	barmap_region_unpin(&bdev->bar);
	mutex_unlock(&bdev->bar.lock);
}

/* no mapping is left: the device's DMA mappings and the memory go back now */
static void barmap_bufs_give_back(struct barmap_dev *bdev)
{
	struct barmap_buf *buf, *next;
	struct barmap_file *bf;

	mutex_lock(&bdev->bufs_lock);
	list_for_each_entry_safe(buf, next, &bdev->bufs, dev_node)
		barmap_buf_give_back(buf, false);
	mutex_unlock(&bdev->bufs_lock);
	mutex_lock(&bdev->files_lock);
	list_for_each_entry(bf, &bdev->files, node)
		barmap_file_drop_bufs(bf);
	mutex_unlock(&bdev->files_lock);
}

static void barmap_remove(struct pci_dev *pdev)
{
	struct barmap_dev *bdev = pci_get_drvdata(pdev);

	barmap_cdev_del(bdev);
	barmap_set_dead(bdev);
	/*
	 * Revoke every user mapping of every open file, race-free: after this
	 * nothing reaches the BAR or a buffer (the next access raises SIGBUS),
	 * and nothing will reach whatever gets the BAR's address next.  The
	 * region's memory type goes with it.
	 */
	barmap_revoke(bdev);
	barmap_bar_unpin(bdev);
	barmap_irq_teardown(bdev);
	barmap_bufs_give_back(bdev);
	pci_clear_master(pdev);
	put_device(&bdev->dev);
}

static const struct pci_device_id barmap_ids[] = {
	{ PCI_DEVICE(BARMAP_PCI_VENDOR_ID, BARMAP_PCI_DEVICE_ID) },
	{ }
};
MODULE_DEVICE_TABLE(pci, barmap_ids);

static struct pci_driver barmap_driver = {
	.name = DRV_NAME,
	.id_table = barmap_ids,
	.probe = barmap_probe,
	.remove = barmap_remove,
};

/* arm64: the reserved region from the device tree, when the parameters give none */
static void __init barmap_reserved_from_dt(void)
{
	struct device_node *np;
	struct reserved_mem *rmem;

	np = of_find_compatible_node(NULL, NULL, "barmap,reserved");
	rmem = np ? of_reserved_mem_lookup(np) : NULL;
	of_node_put(np);
	if (!rmem)
		return;
	reserved_base = rmem->base;
	reserved_size = rmem->size;
	pr_info(DRV_NAME ": reserved region from the device tree (%s)\n",
		rmem->name);
}

static void __init barmap_check_reserved(void)
{
	if (!reserved_base && !reserved_size)
		barmap_reserved_from_dt();
	if (!reserved_base && !reserved_size)
		return;
	if (!reserved_size || !PAGE_ALIGNED(reserved_base) ||
	    !PAGE_ALIGNED(reserved_size) ||
	    reserved_base + reserved_size < reserved_base) {
		pr_warn(DRV_NAME ": reserved region %#lx+%#lx is not page aligned, ignored\n",
			reserved_base, reserved_size);
		return;
	}
	if (region_intersects(reserved_base, reserved_size,
			      IORESOURCE_SYSTEM_RAM, IORES_DESC_NONE) !=
	    REGION_DISJOINT) {
		pr_warn(DRV_NAME ": reserved region %#lx+%#lx overlaps System RAM (no memmap=%#lx$%#lx?), ignored\n",
			reserved_base, reserved_size, reserved_size,
			reserved_base);
		return;
	}
	if (region_intersects(reserved_base, reserved_size, IORESOURCE_MEM,
			      IORES_DESC_NONE) == REGION_DISJOINT)
		pr_warn(DRV_NAME ": nothing claims %#lx+%#lx in /proc/iomem: is there memory at all?\n",
			reserved_base, reserved_size);
	/* exclusive: /dev/mem cannot map it with another cache mode */
	if (!request_mem_region_exclusive(reserved_base, reserved_size,
					  DRV_NAME)) {
		pr_warn(DRV_NAME ": reserved region %#lx+%#lx is claimed by someone else, ignored\n",
			reserved_base, reserved_size);
		return;
	}
	barmap_reserved.phys = reserved_base;
	barmap_reserved.size = reserved_size;
	reserved_ok = true;
	pr_info(DRV_NAME ": reserved region %#lx+%#lx\n", reserved_base,
		reserved_size);
}

/* the filesystem of the devices' shared address_spaces (see barmap_open) */
static int barmap_fs_init_fs_context(struct fs_context *fc)
{
	return init_pseudo(fc, BARMAP_FS_MAGIC) ? 0 : -ENOMEM;
}

static struct file_system_type barmap_fs_type = {
	.name = DRV_NAME,
	.init_fs_context = barmap_fs_init_fs_context,
	.kill_sb = kill_anon_super,
};

static void barmap_release_reserved(void)
{
	if (reserved_ok)
		release_mem_region(reserved_base, reserved_size);
	reserved_ok = false;
}

static int __init barmap_init(void)
{
	int ret;

	barmap_mnt = kern_mount(&barmap_fs_type);
	if (IS_ERR(barmap_mnt))
		return PTR_ERR(barmap_mnt);

	barmap_check_reserved();

	ret = alloc_chrdev_region(&barmap_devt, 0, BARMAP_MAX_DEVS, DRV_NAME);
	if (ret)
		goto err_mnt;

	barmap_class = barmap_class_create(DRV_NAME);
	if (IS_ERR(barmap_class)) {
		ret = PTR_ERR(barmap_class);
		goto err_chrdev;
	}

	ret = pci_register_driver(&barmap_driver);
	if (ret)
		goto err_class;
	return 0;

err_class:
	class_destroy(barmap_class);
err_chrdev:
	unregister_chrdev_region(barmap_devt, BARMAP_MAX_DEVS);
err_mnt:
	barmap_release_reserved();
	kern_unmount(barmap_mnt);
	return ret;
}
module_init(barmap_init);

static void __exit barmap_exit(void)
{
	pci_unregister_driver(&barmap_driver);
	class_destroy(barmap_class);
	unregister_chrdev_region(barmap_devt, BARMAP_MAX_DEVS);
	ida_destroy(&barmap_ida);
	barmap_release_reserved();
	kern_unmount(barmap_mnt);
}
module_exit(barmap_exit);

MODULE_DESCRIPTION("barmap test device: every way a driver maps memory into a process");
MODULE_AUTHOR("barmap project");
MODULE_LICENSE("GPL");
BARMAP_IMPORT_NS_DMA_BUF();
