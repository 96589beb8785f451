// SPDX-License-Identifier: GPL-2.0-only
#include "check.h"

/* ---- the device ---- */

/*
 * The mmap strategies: a new one is one row here, one in the driver's
 * barmap_strategies[] and its id in barmap_uapi.h.  The last two rows are
 * the kernel's own references, no row of the driver: vfio-pci's BAR2
 * region and sysfs resource2 of a barmap device the driver does not hold.
 */
#define IO_ROW(name, id, obj, eager, api) { name, id, obj, eager, 0, api }
#define BUF_ROW(name, kind, eager, api) \
	{ name, BARMAP_BUF_ID(kind, 0), OBJ_BUF, eager, kind, api }
const struct strategy strategies[] = {
	IO_ROW("bar", BARMAP_MMAP_ID_BAR, OBJ_BAR, false,
	       "vmf_insert_pfn() from .fault (PMDs from .huge_fault)"),
	IO_ROW("bar-remap", BARMAP_MMAP_ID_BAR_REMAP, OBJ_BAR, true,
	       "io_remap_pfn_range() in mmap()"),
	IO_ROW("bar-iomap", BARMAP_MMAP_ID_BAR_IOMAP, OBJ_BAR, true,
	       "vm_iomap_memory() in mmap()"),
	BUF_ROW("dma", BARMAP_BUF_COHERENT, true,
		"dma_alloc_coherent() + dma_mmap_coherent()"),
	IO_ROW("reserved", BARMAP_MMAP_ID_RESERVED, OBJ_RESERVED, false,
	       "memmap= reservation, vmf_insert_pfn() from .fault"),
	IO_ROW("reserved-remap", BARMAP_MMAP_ID_RESERVED_REMAP, OBJ_RESERVED,
	       true, "memmap= reservation, remap_pfn_range() in mmap()"),
	BUF_ROW("dma-wc", BARMAP_BUF_WC, true,
		"dma_alloc_wc() + dma_mmap_wc()"),
	BUF_ROW("dma-pages", BARMAP_BUF_PAGES, true,
		"dma_alloc_pages() + dma_mmap_pages(), dma_sync_* by ioctl"),
	BUF_ROW("dma-noncontig", BARMAP_BUF_NONCONTIG, true,
		"dma_alloc_noncontiguous() + dma_mmap_noncontiguous()"),
	BUF_ROW("ram-remap", BARMAP_BUF_KMALLOC, true,
		"kmalloc() + remap_pfn_range() of its PFNs"),
	BUF_ROW("pages-insert", BARMAP_BUF_INSERT, true,
		"alloc_pages() + vm_insert_pages()"),
	BUF_ROW("pages-fault", BARMAP_BUF_FAULT, false,
		"alloc_pages() + .fault returning vmf->page"),
	BUF_ROW("vmalloc", BARMAP_BUF_VMALLOC, true,
		"vmalloc_user() + remap_vmalloc_range()"),
	BUF_ROW("dmabuf", BARMAP_BUF_DMABUF, true,
		"a dma-buf of alloc_pages(), its mmap: remap_pfn_range()"),
	IO_ROW("vfio", 0, OBJ_VFIO, false,
	       "vfio-pci: BAR2 region of the device fd (fault-time)"),
	IO_ROW("resource2", 0, OBJ_RESOURCE, true,
	       "sysfs resource2, no driver bound (io_remap_pfn_range)"),
};
const size_t n_strategies = sizeof(strategies) / sizeof(strategies[0]);

const struct strategy *strategy_named(const char *name)
{
	for (size_t i = 0; i < n_strategies; i++)
		if (!strcmp(strategies[i].name, name))
			return &strategies[i];
	return NULL;
}

/* a row of the driver's table (not one of the kernel's references) */
bool driver_row(const struct strategy *st)
{
	return st->obj == OBJ_BAR || st->obj == OBJ_RESERVED ||
	       st->obj == OBJ_BUF;
}

/* the strategy an mmap id selects, NULL for an id the driver refuses */
const struct strategy *strategy_of_id(uint32_t id)
{
	for (size_t i = 0; i < n_strategies; i++) {
		const struct strategy *st = &strategies[i];
		uint32_t count = st->obj == OBJ_BUF ? BARMAP_BUF_MAX : 1;

		if (driver_row(st) && id >= st->id && id - st->id < count)
			return st;
	}
	return NULL;
}

/* BAR2 or reserved region size (0: none); buffers have their own */
uint64_t object_size(const struct barmap_info *info, enum object obj)
{
	if (obj == OBJ_BAR)
		return info->bar_size;
	if (obj == OBJ_RESERVED)
		return info->reserved_size;
	return 0;
}

int dev_open(int flags)
{
	int fd = open(opt.dev, flags | O_CLOEXEC);

	if (fd < 0) {
		fprintf(stderr, "barmap-check: open %s: %s\n", opt.dev,
			strerror(errno));
		exit(2);
	}
	return fd;
}

int get_info(int fd, struct barmap_info *info)
{
	memset(info, 0, sizeof(*info));
	return ioctl(fd, BARMAP_IOC_INFO, info) ? -errno : 0;
}

int buf_alloc(int fd, uint64_t size, uint32_t *id)
{
	return buf_alloc_kind(fd, BARMAP_BUF_COHERENT, size, id);
}

int buf_alloc_kind(int fd, uint32_t kind, uint64_t size, uint32_t *id)
{
	struct barmap_alloc a = { .size = size, .kind = kind };

	if (ioctl(fd, BARMAP_IOC_ALLOC, &a))
		return -errno;
	*id = a.id;
	return 0;
}

int buf_free(int fd, uint32_t id)
{
	return ioctl(fd, BARMAP_IOC_FREE, &id) ? -errno : 0;
}

int do_dma(int fd, uint32_t id, uint64_t bar_off, uint64_t buf_off,
		  uint64_t len, uint32_t dir, uint32_t *status)
{
	struct barmap_dma d = {
		.bar_off = bar_off, .buf_off = buf_off, .len = len,
		.id = id, .dir = dir,
	};
	int ret = ioctl(fd, BARMAP_IOC_DMA, &d) ? -errno : 0;

	if (status)
		*status = d.status;
	return ret;
}

int set_cache(int fd, uint32_t mode)
{
	return ioctl(fd, BARMAP_IOC_SET_CACHE, &mode) ? -errno : 0;
}

uint32_t cache_mode_opt(void)
{
	return strcmp(opt.cache, "wc") ? BARMAP_CACHE_UC : BARMAP_CACHE_WC;
}

const char *cache_name(uint32_t mode)
{
	if (mode == BARMAP_CACHE_NONE)
		return "none";
	return mode == BARMAP_CACHE_WC ? "wc" : "uc";
}

void *map_id(int fd, uint32_t id, size_t len, int prot, int flags)
{
	return mmap(NULL, len, prot, flags, fd, (off_t)id * page_size);
}

/* ---- guarded memory access: a signal becomes a return value ---- */

static sigjmp_buf guard_jmp;
static volatile sig_atomic_t guard_armed;

static void guard_handler(int sig)
{
	if (guard_armed)
		siglongjmp(guard_jmp, sig);
	signal(sig, SIG_DFL);
	raise(sig);
}

void guard_install(void)
{
	struct sigaction sa = { .sa_handler = guard_handler };

	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_NODEFER;
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
}

/* 0 or the signal number */
int guarded_rw32(volatile uint32_t *p, uint32_t *val, bool write)
{
	int sig;

	guard_armed = 1;
	sig = sigsetjmp(guard_jmp, 1);
	if (!sig) {
		if (write)
			*p = *val;
		else
			*val = *p;
	}
	guard_armed = 0;
	return sig;
}

/* "read=VALUE" or "signal=NAME" for one guarded 32-bit read of p */
void guarded_read_outcome(volatile uint32_t *p, char *out, size_t n)
{
	uint32_t r = 0;
	int sig = guarded_rw32(p, &r, false);

	if (!sig)
		snprintf(out, n, "read=%#x", r);
	else
		snprintf(out, n, "signal=%s",
			 sig == SIGBUS ? "SIGBUS" : strsignal(sig));
}

