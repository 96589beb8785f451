// SPDX-License-Identifier: GPL-2.0-only
/*
 * barmap: Linux driver for the barmap QEMU PCI test device.
 *
 * The device has a register BAR (BARMAP_REG_BAR) and a RAM-backed 64-bit
 * prefetchable BAR (BARMAP_MEM_BAR).  /dev/barmapN lets userspace compare the
 * ways of mapping "memory" into a process:
 *
 *   mmap id 0   BAR2                     pages at fault time (vmf_insert_pfn)
 *   mmap id 1   reserved RAM (memmap=)   pages at fault time
 *   mmap id 2   BAR2                     io_remap_pfn_range() in mmap()
 *   mmap id 3   reserved RAM             remap_pfn_range() in mmap()
 *   mmap id 16+ dma_alloc_coherent()     dma_mmap_coherent()
 *
 * The id travels in the mmap offset (id << PAGE_SHIFT); see barmap_uapi.h
 * and the strategy table barmap_strategies[].
 *
 * Lifetime rules (documented in README.md):
 *  - struct barmap_dev lives as long as its class device; open files, the
 *    cdev and DMA buffers hold references on it, so it survives remove().
 *  - A DMA buffer is referenced by its slot in the open file and by every
 *    VMA mapping it; FREE of a mapped buffer fails with -EBUSY.
 *  - MAP_PRIVATE is refused by testing VM_MAYSHARE, not VM_SHARED: mmap()
 *    clears VM_SHARED for a MAP_SHARED mapping of an O_RDONLY file, which
 *    must still work (read only).
 *  - All opens of a device share one address_space (an inode of a small
 *    pseudo filesystem, as vfio does), so remove() revokes every mapping
 *    with one unmap_mapping_range() after marking the device dead; faults
 *    check "dead" under the same lock, so none can map the BAR again.
 *    Later accesses get SIGBUS.  Buffers lose their slots; mapped ones are
 *    freed when their last VMA goes away.
 *  - One cache mode per region (BAR2, reserved) while it is mapped; see
 *    barmap_region_get().
 */

#include <linux/cdev.h>
#include <linux/completion.h>
#include <linux/delay.h>
#include <linux/device.h>
#include <linux/dma-mapping.h>
#include <linux/fs.h>
#include <linux/idr.h>
#include <linux/interrupt.h>
#include <linux/io.h>
#include <linux/ioport.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mount.h>
#include <linux/mutex.h>
#include <linux/pci.h>
#include <linux/pfn_t.h>
#include <linux/pseudo_fs.h>
#include <linux/rwsem.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/version.h>

#include "barmap_regs.h"
#include "barmap_uapi.h"

#define DRV_NAME			"barmap"
#define BARMAP_MAX_DEVS			256
#define BARMAP_DMA_TIMEOUT_MS		1000
#define BARMAP_DMA_TIMEOUT_MAX_MS	60000
#define BARMAP_DMA_DRAIN_MS		1000
#define BARMAP_FS_MAGIC			0x62726d70	/* "brmp" */

/*
 * PMD mappings of a 2 MiB aligned region from .huge_fault, where the kernel
 * maps huge PFNs (6.12 added it for vfio-pci; 6.17 dropped pfn_t).
 */
#if defined(CONFIG_ARCH_SUPPORTS_PMD_PFNMAP) && \
	LINUX_VERSION_CODE >= KERNEL_VERSION(6, 12, 0) && \
	LINUX_VERSION_CODE < KERNEL_VERSION(6, 17, 0)
#define BARMAP_HUGE_FAULT
#endif

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0)
#define barmap_class_create(name)	class_create(name)
#else
#define barmap_class_create(name)	class_create(THIS_MODULE, name)
#endif

#ifdef PCI_IRQ_INTX
#define BARMAP_PCI_IRQ_INTX		PCI_IRQ_INTX
#else
#define BARMAP_PCI_IRQ_INTX		PCI_IRQ_LEGACY
#endif

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

static unsigned long reserved_base;
module_param(reserved_base, ulong, 0444);
MODULE_PARM_DESC(reserved_base,
		 "physical base of a memmap=SIZE$ADDR reservation (mmap id 1)");

static unsigned long reserved_size;
module_param(reserved_size, ulong, 0444);
MODULE_PARM_DESC(reserved_size, "size in bytes of that reservation");

/* a physical range that io mappings map, and the cache mode in force */
struct barmap_region {
	phys_addr_t phys;
	resource_size_t size;
	struct mutex lock;		/* protects users, mode, pin */
	unsigned long users;		/* VMAs mapping the region */
	u32 mode;			/* BARMAP_CACHE_*, while users */
	void __iomem *pin;		/* holds the memory type, while users */
};

static bool reserved_ok;
static struct barmap_region barmap_reserved = {
	.lock = __MUTEX_INITIALIZER(barmap_reserved.lock),
};

static struct vfsmount *barmap_mnt;
static struct class *barmap_class;
static dev_t barmap_devt;
static DEFINE_IDA(barmap_ida);

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
	bool dead;

	struct mutex files_lock;	/* protects files */
	struct list_head files;

	struct mutex dma_lock;		/* one DMA at a time */
	struct completion dma_done;
	u32 dma_status;

	atomic_t irq_count;
	atomic_t dma_count;
	atomic_t dma_timeouts;
};

struct barmap_buf {
	struct kref ref;		/* file slot + each VMA + running DMA */
	bool leaked;			/* the device may still write into it */
	struct barmap_dev *bdev;	/* holds a reference on bdev->dev */
	void *cpu_addr;
	dma_addr_t dma_addr;
	size_t size;
	u32 id;
	atomic_t map_count;		/* VMAs mapping the buffer */
};

struct barmap_file {
	struct barmap_dev *bdev;
	struct file *filp;
	struct list_head node;		/* in bdev->files */
	struct mutex lock;		/* protects bufs */
	u32 cache_mode;
	struct barmap_buf *bufs[BARMAP_BUF_MAX];
};

static inline struct barmap_dev *to_barmap_dev(struct device *dev)
{
	return container_of(dev, struct barmap_dev, dev);
}

/* DMA buffers */

static void barmap_buf_release(struct kref *ref)
{
	struct barmap_buf *buf = container_of(ref, struct barmap_buf, ref);
	struct barmap_dev *bdev = buf->bdev;

	if (!buf->leaked)
		dma_free_coherent(&bdev->pdev->dev, buf->size, buf->cpu_addr,
				  buf->dma_addr);
	kfree(buf);
	put_device(&bdev->dev);
}

static void barmap_buf_put(struct barmap_buf *buf)
{
	kref_put(&buf->ref, barmap_buf_release);
}

static int barmap_buf_slot(u32 id)
{
	if (id < BARMAP_BUF_ID_FIRST ||
	    id >= BARMAP_BUF_ID_FIRST + BARMAP_BUF_MAX)
		return -EINVAL;
	return id - BARMAP_BUF_ID_FIRST;
}

/* Returns the buffer with a new reference, or NULL. */
static struct barmap_buf *barmap_buf_get(struct barmap_file *bf, u32 id)
{
	struct barmap_buf *buf = NULL;
	int slot = barmap_buf_slot(id);

	if (slot < 0)
		return NULL;
	mutex_lock(&bf->lock);
	buf = bf->bufs[slot];
	if (buf)
		kref_get(&buf->ref);
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

/* mmap */

/*
 * The strategies, one row each: the mmap id (the page offset), its name, what
 * it maps and how.  barmap-check has the same table; a new strategy is one
 * row there, one here and its id in barmap_uapi.h.
 */
enum barmap_obj { BARMAP_OBJ_BAR, BARMAP_OBJ_RESERVED, BARMAP_OBJ_BUF };

struct barmap_strategy {
	u32 id;				/* first mmap id */
	u32 count;			/* ids in the row */
	const char *name;
	enum barmap_obj obj;
	int (*mmap)(struct barmap_file *bf, struct vm_area_struct *vma,
		    const struct barmap_strategy *st, unsigned long len);
	const struct vm_operations_struct *vm_ops;
};

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

/* BAR and reserved mappings: each VMA (also after split or fork) holds its region */

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
}

static void barmap_io_vm_close(struct vm_area_struct *vma)
{
	barmap_region_put(barmap_vma_region(vma));
}

/*
 * Fault-time mapping, as vfio-pci does it: under state_rw, which remove()
 * takes for writing before it zaps, so a PTE is either inserted before the
 * zap (and zapped) or never (SIGBUS).
 */
static vm_fault_t barmap_io_insert(struct vm_fault *vmf, unsigned int order)
{
	struct vm_area_struct *vma = vmf->vma;
	struct barmap_dev *bdev = barmap_vma_dev(vma);
	struct barmap_region *r = barmap_vma_region(vma);
	unsigned long addr = vmf->address & ~((PAGE_SIZE << order) - 1);
	unsigned long pgoff = barmap_vma_first_page(vma) +
			      ((addr - vma->vm_start) >> PAGE_SHIFT);
	unsigned long pfn = PHYS_PFN(r->phys) + pgoff;
	vm_fault_t ret = VM_FAULT_SIGBUS;

	if (order && (addr < vma->vm_start ||
		      addr + (PAGE_SIZE << order) > vma->vm_end ||
		      !IS_ALIGNED(pfn, 1UL << order)))
		return VM_FAULT_FALLBACK;
	if (pgoff + (1UL << order) > PHYS_PFN(r->size))
		return VM_FAULT_SIGBUS;

	down_read(&bdev->state_rw);
	if (bdev->dead)
		goto out;
	switch (order) {
	case 0:
		ret = vmf_insert_pfn(vma, addr, pfn);
		break;
#ifdef BARMAP_HUGE_FAULT
	case PMD_ORDER:
		ret = vmf_insert_pfn_pmd(vmf, __pfn_to_pfn_t(pfn, PFN_DEV),
					 vmf->flags & FAULT_FLAG_WRITE);
		break;
#endif
	default:
		ret = VM_FAULT_FALLBACK;
	}
out:
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
#ifdef BARMAP_HUGE_FAULT
	.huge_fault = barmap_io_insert,
#endif
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

static int barmap_mmap_io(struct barmap_file *bf, struct vm_area_struct *vma,
			  const struct barmap_strategy *st, unsigned long len)
{
	struct barmap_region *r = barmap_region_of(bf->bdev, st->obj);
	u32 mode = READ_ONCE(bf->cache_mode);
	int ret;

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
	if (st->vm_ops == &barmap_fault_vm_ops)
		return 0;	/* pages come from barmap_io_fault() */

	if (st->obj == BARMAP_OBJ_BAR)
		ret = io_remap_pfn_range(vma, vma->vm_start, PHYS_PFN(r->phys),
					 len, vma->vm_page_prot);
	else
		ret = remap_pfn_range(vma, vma->vm_start, PHYS_PFN(r->phys),
				      len, vma->vm_page_prot);
	if (ret)
		barmap_region_put(r);
	return ret;
}

/* DMA buffers: dma_mmap_coherent() fills the page tables in mmap() */

static void barmap_buf_vm_open(struct vm_area_struct *vma)
{
	struct barmap_buf *buf = vma->vm_private_data;

	atomic_inc(&buf->map_count);
	kref_get(&buf->ref);
}

static void barmap_buf_vm_close(struct vm_area_struct *vma)
{
	struct barmap_buf *buf = vma->vm_private_data;

	atomic_dec(&buf->map_count);
	barmap_buf_put(buf);
}

/*
 * Debugger access to a buffer mapping: the PFNMAP pages have no struct page
 * for GUP to pin, so copy from the kernel's view of the buffer.  The buffer
 * outlives the VMA.
 */
static int barmap_buf_vm_access(struct vm_area_struct *vma, unsigned long addr,
				void *data, int len, int write)
{
	struct barmap_buf *buf = vma->vm_private_data;
	unsigned long off = ((vma->vm_pgoff - buf->id) << PAGE_SHIFT) +
			    (addr - vma->vm_start);

	if (off >= buf->size)
		return -EIO;
	len = min_t(unsigned long, len, buf->size - off);
	if (write)
		memcpy(buf->cpu_addr + off, data, len);
	else
		memcpy(data, buf->cpu_addr + off, len);
	return len;
}

static const struct vm_operations_struct barmap_buf_vm_ops = {
	.open = barmap_buf_vm_open,
	.close = barmap_buf_vm_close,
	.access = barmap_buf_vm_access,
};

static int barmap_mmap_buf(struct barmap_file *bf, struct vm_area_struct *vma,
			   const struct barmap_strategy *st, unsigned long len)
{
	struct barmap_dev *bdev = bf->bdev;
	u32 id = vma->vm_pgoff;
	struct barmap_buf *buf;
	int ret;

	mutex_lock(&bf->lock);
	buf = bf->bufs[id - st->id];
	if (!buf || len > buf->size) {
		ret = -EINVAL;
		goto out;
	}

	vma->vm_ops = st->vm_ops;
	vma->vm_private_data = buf;
	barmap_vm_flags_set(vma, VM_DONTEXPAND | VM_DONTDUMP);
	/*
	 * The page offset carried the buffer id; the DMA API reads it as an
	 * offset into the buffer.  Map from the start, then put the id back
	 * so that /proc/PID/maps and the rmap tree show what was asked for.
	 */
	vma->vm_pgoff = 0;
	ret = dma_mmap_coherent(&bdev->pdev->dev, vma, buf->cpu_addr,
				buf->dma_addr, buf->size);
	vma->vm_pgoff = id;
	if (ret)
		goto out;

	atomic_inc(&buf->map_count);
	kref_get(&buf->ref);
out:
	mutex_unlock(&bf->lock);
	return ret;
}

static const struct barmap_strategy barmap_strategies[] = {
	{ BARMAP_MMAP_ID_BAR, 1, "bar", BARMAP_OBJ_BAR,
	  barmap_mmap_io, &barmap_fault_vm_ops },
	{ BARMAP_MMAP_ID_RESERVED, 1, "reserved", BARMAP_OBJ_RESERVED,
	  barmap_mmap_io, &barmap_fault_vm_ops },
	{ BARMAP_MMAP_ID_BAR_REMAP, 1, "bar-remap", BARMAP_OBJ_BAR,
	  barmap_mmap_io, &barmap_remap_vm_ops },
	{ BARMAP_MMAP_ID_RESERVED_REMAP, 1, "reserved-remap",
	  BARMAP_OBJ_RESERVED, barmap_mmap_io, &barmap_remap_vm_ops },
	{ BARMAP_BUF_ID_FIRST, BARMAP_BUF_MAX, "dma", BARMAP_OBJ_BUF,
	  barmap_mmap_buf, &barmap_buf_vm_ops },
};

static const struct barmap_strategy *barmap_strategy(unsigned long id)
{
	const struct barmap_strategy *st;

	for (st = barmap_strategies;
	     st < barmap_strategies + ARRAY_SIZE(barmap_strategies); st++)
		if (id >= st->id && id - st->id < st->count)
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
	 * Lock order: a VMA's lock, then state_rw (a fault holds the first, read, when
	 * barmap_io_insert() takes the second).  Setting a VMA's flags write-locks the
	 * VMA (vm_flags_set(), remap_pfn_range(), dma_mmap_coherent()), so take that
	 * lock here, first: under state_rw the calls then find it held.  Lockdep on
	 * 6.12 reported the inverse order as a circular dependency.
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
		ret = st->mmap(bf, vma, st, len);
	up_read(&bdev->state_rw);
	if (ret && st)
		dev_dbg(&bdev->dev, "mmap %s (id %lu, %lu bytes): %d\n",
			st->name, vma->vm_pgoff, len, ret);
	return ret;
}

/* ioctls; user copies happen outside state_rw (mmap_lock nests outside it) */

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
	int slot = barmap_buf_slot(id);
	struct barmap_buf *buf;

	if (slot < 0)
		return -EINVAL;
	mutex_lock(&bf->lock);
	buf = bf->bufs[slot];
	if (!buf) {
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

	for (i = 0; i < BARMAP_BUF_MAX; i++)
		if (!bf->bufs[i])
			return i;
	return -ENOSPC;
}

static long barmap_ioc_alloc(struct barmap_file *bf, void __user *uarg)
{
	struct barmap_dev *bdev = bf->bdev;
	struct barmap_alloc req;
	struct barmap_buf *buf;
	int slot;
	int ret;

	if (copy_from_user(&req, uarg, sizeof(req)))
		return -EFAULT;
	if (req.flags || !req.size || req.size > BARMAP_BUF_SIZE_MAX)
		return -EINVAL;

	buf = kzalloc(sizeof(*buf), GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	kref_init(&buf->ref);
	atomic_set(&buf->map_count, 0);
	buf->size = PAGE_ALIGN(req.size);

	down_read(&bdev->state_rw);
	if (bdev->dead) {
		ret = -ENODEV;
		goto err_unlock;
	}
	mutex_lock(&bf->lock);
	slot = barmap_free_slot(bf);
	mutex_unlock(&bf->lock);
	if (slot < 0) {
		ret = slot;
		goto err_unlock;
	}
	buf->cpu_addr = dma_alloc_coherent(&bdev->pdev->dev, buf->size,
					   &buf->dma_addr, GFP_KERNEL);
	if (!buf->cpu_addr) {
		ret = -ENOMEM;
		goto err_unlock;
	}
	get_device(&bdev->dev);
	buf->bdev = bdev;

	mutex_lock(&bf->lock);
	slot = barmap_free_slot(bf);	/* again: the lock was dropped */
	if (slot >= 0) {
		buf->id = BARMAP_BUF_ID_FIRST + slot;
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

err_unlock:
	up_read(&bdev->state_rw);
	kfree(buf);
	return ret;
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

/* Called with state_rw held for reading and dma_lock held. */
static int barmap_dma_run(struct barmap_dev *bdev, struct barmap_buf *buf,
			  const struct barmap_dma *req, u32 *status)
{
	void __iomem *regs = bdev->regs;
	dma_addr_t bus = buf->dma_addr + req->buf_off;
	unsigned long timeout = msecs_to_jiffies(req->timeout_ms ?:
						 BARMAP_DMA_TIMEOUT_MS);
	unsigned long drain;
	u32 cmd;

	reinit_completion(&bdev->dma_done);
	WRITE_ONCE(bdev->dma_status, 0);

	iowrite32(lower_32_bits(bus), regs + BARMAP_REG_DMA_BUS_LO);
	iowrite32(upper_32_bits(bus), regs + BARMAP_REG_DMA_BUS_HI);
	iowrite32(lower_32_bits(req->bar_off), regs + BARMAP_REG_DMA_OFF_LO);
	iowrite32(upper_32_bits(req->bar_off), regs + BARMAP_REG_DMA_OFF_HI);
	iowrite32(req->len, regs + BARMAP_REG_DMA_LEN);
	cmd = BARMAP_DMA_CMD_START | BARMAP_DMA_CMD_IRQ;
	if (req->dir == BARMAP_DMA_FROM_DEV)
		cmd |= BARMAP_DMA_CMD_FROM_DEV;
	atomic_inc(&bdev->dma_count);
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
	atomic_inc(&bdev->dma_timeouts);
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
	ret = barmap_dma_run(bdev, buf, &req, &status);
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
	case BARMAP_IOC_ALLOC:
		return writable ? barmap_ioc_alloc(bf, uarg) : -EBADF;
	case BARMAP_IOC_FREE:
		return writable ? barmap_ioc_free(bf, uarg) : -EBADF;
	case BARMAP_IOC_DMA:
		return writable ? barmap_ioc_dma(bf, uarg) : -EBADF;
	case BARMAP_IOC_SET_CACHE:
		return writable ? barmap_ioc_set_cache(bf, uarg) : -EBADF;
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

static const struct file_operations barmap_fops = {
	.owner = THIS_MODULE,
	.open = barmap_open,
	.release = barmap_release,
	.mmap = barmap_mmap,
#ifdef BARMAP_HUGE_FAULT
	/* a BAR mapping at a 2 MiB aligned address can take PMDs */
	.get_unmapped_area = thp_get_unmapped_area,
#endif
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

static ssize_t irq_count_show(struct device *dev,
			      struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%d\n",
			  atomic_read(&to_barmap_dev(dev)->irq_count));
}
static DEVICE_ATTR_RO(irq_count);

static ssize_t dma_count_show(struct device *dev,
			      struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%d\n",
			  atomic_read(&to_barmap_dev(dev)->dma_count));
}
static DEVICE_ATTR_RO(dma_count);

static ssize_t dma_timeouts_show(struct device *dev,
				 struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%d\n",
			  atomic_read(&to_barmap_dev(dev)->dma_timeouts));
}
static DEVICE_ATTR_RO(dma_timeouts);

static struct attribute *barmap_attrs[] = {
	&dev_attr_irq_mode.attr,
	&dev_attr_irq_count.attr,
	&dev_attr_dma_count.attr,
	&dev_attr_dma_timeouts.attr,
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
	atomic_inc(&bdev->irq_count);
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

static int barmap_setup_pci(struct pci_dev *pdev)
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

static int barmap_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct device *dev = &pdev->dev;
	struct barmap_dev *bdev;
	void __iomem *regs;
	u64 mem_size;
	u32 magic;
	int minor;
	int ret;

	ret = barmap_setup_pci(pdev);
	if (ret)
		return ret;

	regs = pcim_iomap_table(pdev)[BARMAP_REG_BAR];
	magic = ioread32(regs + BARMAP_REG_ID);
	if (magic != BARMAP_ID_MAGIC)
		return dev_err_probe(dev, -ENODEV, "bad magic %#x\n", magic);

	ret = pci_alloc_irq_vectors(pdev, 1, 1,
				    PCI_IRQ_MSI | BARMAP_PCI_IRQ_INTX);
	if (ret < 0)
		return dev_err_probe(dev, ret, "no interrupt\n");

	minor = ida_alloc_max(&barmap_ida, BARMAP_MAX_DEVS - 1, GFP_KERNEL);
	if (minor < 0)
		return minor;

	bdev = kzalloc(sizeof(*bdev), GFP_KERNEL);
	if (!bdev) {
		ida_free(&barmap_ida, minor);
		return -ENOMEM;
	}
	bdev->pdev = pci_dev_get(pdev);
	bdev->regs = regs;
	bdev->minor = minor;
	bdev->bar.phys = pci_resource_start(pdev, BARMAP_MEM_BAR);
	bdev->bar.size = pci_resource_len(pdev, BARMAP_MEM_BAR);
	mutex_init(&bdev->bar.lock);
	bdev->version = ioread32(regs + BARMAP_REG_VERSION);
	bdev->msi = pdev->msi_enabled;
	bdev->irq = pci_irq_vector(pdev, 0);
	init_rwsem(&bdev->state_rw);
	mutex_init(&bdev->files_lock);
	INIT_LIST_HEAD(&bdev->files);
	mutex_init(&bdev->dma_lock);
	init_completion(&bdev->dma_done);

	/* from here on, put_device() frees bdev and the minor */
	device_initialize(&bdev->dev);
	bdev->dev.class = barmap_class;
	bdev->dev.parent = dev;
	bdev->dev.devt = MKDEV(MAJOR(barmap_devt), minor);
	bdev->dev.groups = barmap_groups;
	bdev->dev.release = barmap_dev_release;
	ret = dev_set_name(&bdev->dev, DRV_NAME "%d", minor);
	if (ret)
		goto err_put;
	bdev->inode = alloc_anon_inode(barmap_mnt->mnt_sb);
	if (IS_ERR(bdev->inode)) {
		ret = PTR_ERR(bdev->inode);
		bdev->inode = NULL;
		goto err_put;
	}

	mem_size = ioread32(regs + BARMAP_REG_MEM_SIZE_LO) |
		   (u64)ioread32(regs + BARMAP_REG_MEM_SIZE_HI) << 32;
	if (mem_size != bdev->bar.size)
		dev_warn(dev, "MEM_SIZE %#llx but BAR%d is %pa bytes\n",
			 mem_size, BARMAP_MEM_BAR, &bdev->bar.size);

	iowrite32(0, regs + BARMAP_REG_IRQ_MASK);
	iowrite32(BARMAP_IRQ_ALL, regs + BARMAP_REG_IRQ_ACK);
	ret = request_irq(bdev->irq, barmap_irq, IRQF_SHARED,
			  dev_name(&bdev->dev), bdev);
	if (ret)
		goto err_put;
	iowrite32(BARMAP_IRQ_ALL, regs + BARMAP_REG_IRQ_MASK);

	cdev_init(&bdev->cdev, &barmap_fops);
	bdev->cdev.owner = THIS_MODULE;
	ret = cdev_device_add(&bdev->cdev, &bdev->dev);
	if (ret)
		goto err_irq;

	pci_set_drvdata(pdev, bdev);
	dev_info(dev, "%s: BAR%d %pa+%pa, %s irq %d, version %#x\n",
		 dev_name(&bdev->dev), BARMAP_MEM_BAR, &bdev->bar.phys,
		 &bdev->bar.size, bdev->msi ? "MSI" : "INTx", bdev->irq,
		 bdev->version);
	return 0;

err_irq:
	iowrite32(0, regs + BARMAP_REG_IRQ_MASK);
	free_irq(bdev->irq, bdev);
err_put:
	put_device(&bdev->dev);
	return ret;
}

static void barmap_remove(struct pci_dev *pdev)
{
	struct barmap_dev *bdev = pci_get_drvdata(pdev);
	struct barmap_file *bf;

	cdev_device_del(&bdev->cdev, &bdev->dev);

	/* waits for every ioctl, mmap and fault in flight, including a DMA */
	down_write(&bdev->state_rw);
	bdev->dead = true;
	up_write(&bdev->state_rw);

	/*
	 * Revoke every user mapping of every open file: no fault maps a page
	 * once "dead" is set, so after this zap nothing reaches the BAR (the
	 * next access raises SIGBUS), and nothing will reach whatever gets
	 * its address next.  The region's memory type goes with it.
	 */
	unmap_mapping_range(bdev->inode->i_mapping, 0, 0, 1);
	mutex_lock(&bdev->bar.lock);
	barmap_region_unpin(&bdev->bar);
	mutex_unlock(&bdev->bar.lock);

	iowrite32(0, bdev->regs + BARMAP_REG_IRQ_MASK);
	free_irq(bdev->irq, bdev);

	/* the mapped buffers stay allocated until their last VMA goes */
	mutex_lock(&bdev->files_lock);
	list_for_each_entry(bf, &bdev->files, node)
		barmap_file_drop_bufs(bf);
	mutex_unlock(&bdev->files_lock);

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

static void __init barmap_check_reserved(void)
{
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

MODULE_DESCRIPTION("barmap test device: BAR, reserved and DMA buffer mmap");
MODULE_AUTHOR("barmap project");
MODULE_LICENSE("GPL");
