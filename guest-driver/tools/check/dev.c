// SPDX-License-Identifier: GPL-2.0-only
#include "check.h"

/* ---- the device ---- */

/*
 * The mmap strategies: a new one is one row here, one in the driver's
 * barmap_strategies[] and its id in barmap_uapi.h.
 */
const struct strategy strategies[] = {
	{ "bar", BARMAP_MMAP_ID_BAR, OBJ_BAR, false },
	{ "bar-remap", BARMAP_MMAP_ID_BAR_REMAP, OBJ_BAR, true },
	{ "dma", BARMAP_BUF_ID_FIRST, OBJ_BUF, true },
	{ "reserved", BARMAP_MMAP_ID_RESERVED, OBJ_RESERVED, false },
	{ "reserved-remap", BARMAP_MMAP_ID_RESERVED_REMAP, OBJ_RESERVED, true },
};
const size_t n_strategies = sizeof(strategies) / sizeof(strategies[0]);

const struct strategy *strategy_named(const char *name)
{
	for (size_t i = 0; i < n_strategies; i++)
		if (!strcmp(strategies[i].name, name))
			return &strategies[i];
	return NULL;
}

/* the strategy an mmap id selects, NULL for an id the driver refuses */
const struct strategy *strategy_of_id(uint32_t id)
{
	for (size_t i = 0; i < n_strategies; i++) {
		const struct strategy *st = &strategies[i];
		uint32_t count = st->obj == OBJ_BUF ? BARMAP_BUF_MAX : 1;

		if (id >= st->id && id - st->id < count)
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
	struct barmap_alloc a = { .size = size };

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

