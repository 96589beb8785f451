// SPDX-License-Identifier: GPL-2.0-only
#include "check.h"

/* ---- refusal and hostile matrices ---- */

/*
 * A case returns its outcome as text: "ok", "errno=EINVAL", "signal=SIGBUS",
 * or anything else that the expectation is compared with.
 */
struct ctx {
	int fd;
	struct barmap_info info;
};

typedef void (*case_fn)(struct ctx *c, char *out, size_t n);

struct hcase {
	const char *name;
	const char *expect;
	case_fn fn;
	bool refusal;		/* part of probe-refusals */
};

static void out_errno(char *out, size_t n, int ret)
{
	if (ret < 0)
		snprintf(out, n, "errno=%s", errname(-ret));
	else
		snprintf(out, n, "ok");
}

static void out_mmap(char *out, size_t n, void *p, size_t len)
{
	if (p == MAP_FAILED) {
		out_errno(out, n, -errno);
		return;
	}
	munmap(p, len);
	snprintf(out, n, "ok");
}

static void c_bar_past_end(struct ctx *c, char *out, size_t n)
{
	size_t len = c->info.bar_size + page_size;

	out_mmap(out, n, map_id(c->fd, BARMAP_MMAP_ID_BAR, len,
				PROT_READ | PROT_WRITE, MAP_SHARED), len);
}

static void c_unknown_buf(struct ctx *c, char *out, size_t n)
{
	out_mmap(out, n, map_id(c->fd, BARMAP_BUF_ID_FIRST + BARMAP_BUF_MAX - 1,
				page_size, PROT_READ | PROT_WRITE, MAP_SHARED),
		 page_size);
}

/* the first id below the buffers that no strategy has */
static void c_id_gap(struct ctx *c, char *out, size_t n)
{
	uint32_t id = 0;

	while (strategy_of_id(id))
		id++;
	out_mmap(out, n, map_id(c->fd, id, page_size, PROT_READ | PROT_WRITE,
				MAP_SHARED), page_size);
}

static void c_id_above(struct ctx *c, char *out, size_t n)
{
	out_mmap(out, n, map_id(c->fd, BARMAP_BUF_ID_FIRST + BARMAP_BUF_MAX,
				page_size, PROT_READ | PROT_WRITE, MAP_SHARED),
		 page_size);
}

static void c_map_private(struct ctx *c, char *out, size_t n)
{
	out_mmap(out, n, map_id(c->fd, BARMAP_MMAP_ID_BAR, page_size,
				PROT_READ | PROT_WRITE, MAP_PRIVATE), page_size);
}

static void c_map_private_ro(struct ctx *c, char *out, size_t n)
{
	out_mmap(out, n, map_id(c->fd, BARMAP_MMAP_ID_BAR, page_size,
				PROT_READ, MAP_PRIVATE), page_size);
}

static void c_bad_ioctl(struct ctx *c, char *out, size_t n)
{
	out_errno(out, n, ioctl(c->fd, _IO(BARMAP_IOC_MAGIC, 0x7f)) ? -errno : 0);
}

static void c_wrong_magic(struct ctx *c, char *out, size_t n)
{
	struct barmap_info i;

	out_errno(out, n, ioctl(c->fd, _IOR('X', 0x01, struct barmap_info), &i) ?
		  -errno : 0);
}

static void c_wrong_size(struct ctx *c, char *out, size_t n)
{
	uint32_t v;

	out_errno(out, n, ioctl(c->fd, _IOR(BARMAP_IOC_MAGIC, 0x01, uint32_t),
				&v) ? -errno : 0);
}

static void c_info_null(struct ctx *c, char *out, size_t n)
{
	out_errno(out, n, ioctl(c->fd, BARMAP_IOC_INFO, NULL) ? -errno : 0);
}

static void c_info_readonly(struct ctx *c, char *out, size_t n)
{
	void *p = mmap(NULL, page_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);

	out_errno(out, n, ioctl(c->fd, BARMAP_IOC_INFO, p) ? -errno : 0);
	munmap(p, page_size);
}

static void alloc_case(struct ctx *c, char *out, size_t n, uint64_t size,
		       uint32_t kind)
{
	struct barmap_alloc a = { .size = size, .kind = kind };
	int ret = ioctl(c->fd, BARMAP_IOC_ALLOC, &a) ? -errno : 0;

	if (!ret)
		buf_free(c->fd, a.id);
	out_errno(out, n, ret);
}

static void c_alloc_zero(struct ctx *c, char *out, size_t n)
{
	alloc_case(c, out, n, 0, 0);
}

static void c_alloc_huge(struct ctx *c, char *out, size_t n)
{
	alloc_case(c, out, n, BARMAP_BUF_SIZE_MAX + 1, 0);
}

static void c_alloc_u64max(struct ctx *c, char *out, size_t n)
{
	alloc_case(c, out, n, UINT64_MAX, 0);
}

static void c_alloc_bad_kind(struct ctx *c, char *out, size_t n)
{
	alloc_case(c, out, n, page_size, BARMAP_BUF_KINDS);
}

static void c_alloc_null(struct ctx *c, char *out, size_t n)
{
	out_errno(out, n, ioctl(c->fd, BARMAP_IOC_ALLOC, NULL) ? -errno : 0);
}

static void c_alloc_exhaust(struct ctx *c, char *out, size_t n)
{
	uint32_t ids[BARMAP_BUF_MAX + 1];
	int i, got = 0, ret = 0;

	for (i = 0; i <= BARMAP_BUF_MAX; i++) {
		ret = buf_alloc(c->fd, page_size, &ids[got]);
		if (ret)
			break;
		got++;
	}
	for (i = 0; i < got; i++)
		buf_free(c->fd, ids[i]);
	if (got != BARMAP_BUF_MAX)
		snprintf(out, n, "allocated=%d errno=%s", got, errname(-ret));
	else
		out_errno(out, n, ret);
}

static void c_free_bad(struct ctx *c, char *out, size_t n)
{
	out_errno(out, n, buf_free(c->fd, BARMAP_MMAP_ID_BAR));
}

static void c_free_unknown(struct ctx *c, char *out, size_t n)
{
	out_errno(out, n, buf_free(c->fd, BARMAP_BUF_ID_FIRST + BARMAP_BUF_MAX - 1));
}

static void c_free_twice(struct ctx *c, char *out, size_t n)
{
	uint32_t id = 0;
	int ret = buf_alloc(c->fd, page_size, &id);

	if (!ret)
		ret = buf_free(c->fd, id);
	if (!ret)
		ret = buf_free(c->fd, id);
	out_errno(out, n, ret);
}

static void c_free_mapped(struct ctx *c, char *out, size_t n)
{
	uint32_t id = 0;
	void *p;
	int ret = buf_alloc(c->fd, page_size, &id), ret2;

	if (ret) {
		out_errno(out, n, ret);
		return;
	}
	p = map_id(c->fd, id, page_size, PROT_READ | PROT_WRITE, MAP_SHARED);
	if (p == MAP_FAILED) {
		snprintf(out, n, "mmap-%s", errname(errno));
		buf_free(c->fd, id);
		return;
	}
	ret = buf_free(c->fd, id);
	munmap(p, page_size);
	ret2 = buf_free(c->fd, id);
	if (ret2)
		snprintf(out, n, "errno=%s then-after-munmap=%s", errname(-ret),
			 errname(-ret2));
	else
		out_errno(out, n, ret);
}

/* a partial munmap leaves a piece mapped: the buffer stays busy */
static void c_free_partly_mapped(struct ctx *c, char *out, size_t n)
{
	uint32_t id = 0;
	uint8_t *p;
	int ret = buf_alloc(c->fd, 4 * page_size, &id);

	if (ret) {
		out_errno(out, n, ret);
		return;
	}
	p = map_id(c->fd, id, 4 * page_size, PROT_READ | PROT_WRITE, MAP_SHARED);
	if (p == MAP_FAILED) {
		snprintf(out, n, "mmap-%s", errname(errno));
		buf_free(c->fd, id);
		return;
	}
	munmap(p + page_size, page_size);	/* split into two VMAs */
	munmap(p, page_size);
	ret = buf_free(c->fd, id);
	munmap(p + 2 * page_size, 2 * page_size);
	if (buf_free(c->fd, id))
		snprintf(out, n, "errno=%s leaked", errname(-ret));
	else
		out_errno(out, n, ret);
}

static void c_cache_bad(struct ctx *c, char *out, size_t n)
{
	out_errno(out, n, set_cache(c->fd, 2));
}

static void c_cache_max(struct ctx *c, char *out, size_t n)
{
	out_errno(out, n, set_cache(c->fd, UINT32_MAX));
}

static void c_cache_null(struct ctx *c, char *out, size_t n)
{
	out_errno(out, n, ioctl(c->fd, BARMAP_IOC_SET_CACHE, NULL) ? -errno : 0);
}

static void dma_case(struct ctx *c, char *out, size_t n, uint64_t bar_off,
		     uint64_t buf_off, uint64_t len, int id_delta, uint32_t dir,
		     uint32_t timeout)
{
	struct barmap_dma d = {
		.bar_off = bar_off, .buf_off = buf_off, .len = len,
		.dir = dir, .timeout_ms = timeout,
	};
	uint32_t id = 0;
	int ret = buf_alloc(c->fd, 2 * page_size, &id);

	if (ret) {
		snprintf(out, n, "alloc-%s", errname(-ret));
		return;
	}
	d.id = id + id_delta;
	ret = ioctl(c->fd, BARMAP_IOC_DMA, &d) ? -errno : 0;
	buf_free(c->fd, id);
	out_errno(out, n, ret);
}

static void c_dma_ok(struct ctx *c, char *out, size_t n)
{
	dma_case(c, out, n, 0, 0, page_size, 0, BARMAP_DMA_FROM_DEV, 0);
}

static void c_dma_len0(struct ctx *c, char *out, size_t n)
{
	dma_case(c, out, n, 0, 0, 0, 0, BARMAP_DMA_TO_DEV, 0);
}

static void c_dma_len_max(struct ctx *c, char *out, size_t n)
{
	dma_case(c, out, n, 0, 0, BARMAP_DMA_MAX_LEN + 1, 0, BARMAP_DMA_TO_DEV, 0);
}

static void c_dma_bar_end(struct ctx *c, char *out, size_t n)
{
	dma_case(c, out, n, c->info.bar_size - page_size / 2, 0, page_size, 0,
		 BARMAP_DMA_TO_DEV, 0);
}

static void c_dma_bar_wrap(struct ctx *c, char *out, size_t n)
{
	dma_case(c, out, n, UINT64_MAX - 15, 0, 64, 0, BARMAP_DMA_TO_DEV, 0);
}

static void c_dma_buf_end(struct ctx *c, char *out, size_t n)
{
	dma_case(c, out, n, 0, page_size + 1, page_size, 0, BARMAP_DMA_TO_DEV, 0);
}

static void c_dma_buf_wrap(struct ctx *c, char *out, size_t n)
{
	dma_case(c, out, n, 0, UINT64_MAX - 15, 64, 0, BARMAP_DMA_TO_DEV, 0);
}

static void c_dma_bad_id(struct ctx *c, char *out, size_t n)
{
	dma_case(c, out, n, 0, 0, 64, 1, BARMAP_DMA_TO_DEV, 0);
}

static void c_dma_bar_id(struct ctx *c, char *out, size_t n)
{
	struct barmap_dma d = { .len = 64, .id = BARMAP_MMAP_ID_BAR };

	out_errno(out, n, ioctl(c->fd, BARMAP_IOC_DMA, &d) ? -errno : 0);
}

static void c_dma_bad_dir(struct ctx *c, char *out, size_t n)
{
	dma_case(c, out, n, 0, 0, 64, 0, 2, 0);
}

static void c_dma_bad_timeout(struct ctx *c, char *out, size_t n)
{
	dma_case(c, out, n, 0, 0, 64, 0, BARMAP_DMA_TO_DEV, UINT32_MAX);
}

static void c_dma_null(struct ctx *c, char *out, size_t n)
{
	out_errno(out, n, ioctl(c->fd, BARMAP_IOC_DMA, NULL) ? -errno : 0);
}

static void c_mmap_len0(struct ctx *c, char *out, size_t n)
{
	out_mmap(out, n, map_id(c->fd, BARMAP_MMAP_ID_BAR, 0,
				PROT_READ | PROT_WRITE, MAP_SHARED), 0);
}

static void c_mmap_unaligned(struct ctx *c, char *out, size_t n)
{
	void *p = mmap(NULL, page_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		       c->fd, 1);

	out_mmap(out, n, p, page_size);
}

static void c_mmap_huge_off(struct ctx *c, char *out, size_t n)
{
	void *p = mmap(NULL, page_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		       c->fd, (off_t)0x7fffffffffff0000LL);

	out_mmap(out, n, p, page_size);
}

static void c_buf_past_end(struct ctx *c, char *out, size_t n)
{
	uint32_t id = 0;
	int ret = buf_alloc(c->fd, page_size, &id);

	if (ret) {
		out_errno(out, n, ret);
		return;
	}
	out_mmap(out, n, map_id(c->fd, id, 2 * page_size, PROT_READ | PROT_WRITE,
				MAP_SHARED), 2 * page_size);
	buf_free(c->fd, id);
}

static void c_reserved(struct ctx *c, char *out, size_t n)
{
	out_mmap(out, n, map_id(c->fd, BARMAP_MMAP_ID_RESERVED, page_size,
				PROT_READ | PROT_WRITE, MAP_SHARED), page_size);
}

static void c_reserved_past_end(struct ctx *c, char *out, size_t n)
{
	size_t len = c->info.reserved_size + page_size;

	out_mmap(out, n, map_id(c->fd, BARMAP_MMAP_ID_RESERVED, len,
				PROT_READ | PROT_WRITE, MAP_SHARED), len);
}

static void c_readonly_fd_write(struct ctx *c, char *out, size_t n)
{
	int fd = dev_open(O_RDONLY);

	out_mmap(out, n, map_id(fd, BARMAP_MMAP_ID_BAR, page_size,
				PROT_READ | PROT_WRITE, MAP_SHARED), page_size);
	close(fd);
}

static void c_readonly_fd_read(struct ctx *c, char *out, size_t n)
{
	int fd = dev_open(O_RDONLY);

	out_mmap(out, n, map_id(fd, BARMAP_MMAP_ID_BAR, page_size, PROT_READ,
				MAP_SHARED), page_size);
	close(fd);
}

/* a read-only file may look (INFO, PROT_READ) but change nothing: EBADF */
static void readonly_ioctl(char *out, size_t n, unsigned long cmd, void *arg)
{
	int fd = dev_open(O_RDONLY);

	out_errno(out, n, ioctl(fd, cmd, arg) ? -errno : 0);
	close(fd);
}

static void c_readonly_fd_info(struct ctx *c, char *out, size_t n)
{
	struct barmap_info info;

	readonly_ioctl(out, n, BARMAP_IOC_INFO, &info);
}

static void c_readonly_fd_alloc(struct ctx *c, char *out, size_t n)
{
	struct barmap_alloc a = { .size = page_size };

	readonly_ioctl(out, n, BARMAP_IOC_ALLOC, &a);
}

static void c_readonly_fd_free(struct ctx *c, char *out, size_t n)
{
	uint32_t id = BARMAP_BUF_ID_FIRST;

	readonly_ioctl(out, n, BARMAP_IOC_FREE, &id);
}

static void c_readonly_fd_dma(struct ctx *c, char *out, size_t n)
{
	struct barmap_dma d = { .len = 64, .id = BARMAP_BUF_ID_FIRST,
				.dir = BARMAP_DMA_TO_DEV };

	readonly_ioctl(out, n, BARMAP_IOC_DMA, &d);
}

static void c_readonly_fd_set_cache(struct ctx *c, char *out, size_t n)
{
	uint32_t mode = BARMAP_CACHE_WC;

	readonly_ioctl(out, n, BARMAP_IOC_SET_CACHE, &mode);
}

static void mremap_case(struct ctx *c, char *out, size_t n, bool buffer,
			size_t new_len, int flags)
{
	uint32_t id = BARMAP_MMAP_ID_BAR;
	size_t len = 2 * page_size;
	void *p, *q;
	int ret = 0;

	if (buffer)
		ret = buf_alloc(c->fd, 4 * page_size, &id);
	if (ret) {
		out_errno(out, n, ret);
		return;
	}
	p = map_id(c->fd, id, len, PROT_READ | PROT_WRITE, MAP_SHARED);
	if (p == MAP_FAILED) {
		snprintf(out, n, "mmap-%s", errname(errno));
	} else {
		q = mremap(p, len, new_len, flags);
		if (q == MAP_FAILED) {
			out_errno(out, n, -errno);
			munmap(p, len);
		} else {
			snprintf(out, n, "ok");
			munmap(q, new_len);
		}
	}
	if (buffer)
		buf_free(c->fd, id);
}

static void c_mremap_grow(struct ctx *c, char *out, size_t n)
{
	mremap_case(c, out, n, false, 4 * page_size, MREMAP_MAYMOVE);
}

static void c_mremap_grow_inplace(struct ctx *c, char *out, size_t n)
{
	mremap_case(c, out, n, false, 4 * page_size, 0);
}

static void c_mremap_grow_buf(struct ctx *c, char *out, size_t n)
{
	mremap_case(c, out, n, true, 4 * page_size, MREMAP_MAYMOVE);
}

static void c_mremap_shrink(struct ctx *c, char *out, size_t n)
{
	mremap_case(c, out, n, true, page_size, 0);
}

static void c_madv_dontneed(struct ctx *c, char *out, size_t n)
{
	void *p = map_id(c->fd, BARMAP_MMAP_ID_BAR, page_size,
			 PROT_READ | PROT_WRITE, MAP_SHARED);

	if (p == MAP_FAILED) {
		snprintf(out, n, "mmap-%s", errname(errno));
		return;
	}
	out_errno(out, n, madvise(p, page_size, MADV_DONTNEED) ? -errno : 0);
	munmap(p, page_size);
}

/* fork, the child writes, the parent must see it: shared semantics */
static void fork_case(struct ctx *c, char *out, size_t n, bool buffer)
{
	uint32_t id = BARMAP_MMAP_ID_BAR, v = 0x600d1dea ^ (uint32_t)getpid();
	volatile uint32_t *p;
	int ret = 0, status;
	pid_t pid;

	if (buffer)
		ret = buf_alloc(c->fd, page_size, &id);
	if (ret) {
		out_errno(out, n, ret);
		return;
	}
	p = map_id(c->fd, id, page_size, PROT_READ | PROT_WRITE, MAP_SHARED);
	if (p == MAP_FAILED) {
		snprintf(out, n, "mmap-%s", errname(errno));
		goto out;
	}
	p[1] = 0;
	pid = fork();
	if (pid < 0) {
		snprintf(out, n, "fork-%s", errname(errno));
		munmap((void *)p, page_size);
		goto out;
	}
	if (!pid) {
		uint32_t w = v;

		_exit(guarded_rw32(&p[1], &w, true) ? 3 : 0);
	}
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		snprintf(out, n, "child-failed status=%#x", status);
	else if (p[1] == v)
		snprintf(out, n, "shared");
	else
		snprintf(out, n, "not-shared got=%#x", p[1]);
	munmap((void *)p, page_size);
	if (buffer && buf_free(c->fd, id))
		snprintf(out + strlen(out), n - strlen(out), " busy-after-fork");
out:
	if (buffer)
		buf_free(c->fd, id);
}

static void c_fork_bar(struct ctx *c, char *out, size_t n)
{
	fork_case(c, out, n, false);
}

static void c_fork_buf(struct ctx *c, char *out, size_t n)
{
	fork_case(c, out, n, true);
}

/* the mapping holds the file: closing the fd first changes nothing */
static void c_close_first(struct ctx *c, char *out, size_t n)
{
	int fd = dev_open(O_RDWR);
	uint32_t id = 0, v = 0x12345678, r = 0;
	volatile uint32_t *p;
	int ret = buf_alloc(fd, page_size, &id), sig;

	if (ret) {
		out_errno(out, n, ret);
		close(fd);
		return;
	}
	p = map_id(fd, id, page_size, PROT_READ | PROT_WRITE, MAP_SHARED);
	close(fd);
	if (p == MAP_FAILED) {
		snprintf(out, n, "mmap-%s", errname(errno));
		return;
	}
	sig = guarded_rw32(p, &v, true);
	if (!sig)
		sig = guarded_rw32(p, &r, false);
	if (sig)
		snprintf(out, n, "signal=%s", strsignal(sig));
	else
		snprintf(out, n, r == v ? "ok" : "mismatch");
	munmap((void *)p, page_size);
}

static void c_after_munmap(struct ctx *c, char *out, size_t n)
{
	volatile uint32_t *p = map_id(c->fd, BARMAP_MMAP_ID_BAR, page_size,
				      PROT_READ | PROT_WRITE, MAP_SHARED);
	uint32_t v;
	int sig;

	if (p == MAP_FAILED) {
		snprintf(out, n, "mmap-%s", errname(errno));
		return;
	}
	munmap((void *)p, page_size);
	sig = guarded_rw32(p, &v, false);
	if (sig)
		snprintf(out, n, "signal=%s", sig == SIGSEGV ? "SIGSEGV" :
			 sig == SIGBUS ? "SIGBUS" : "other");
	else
		snprintf(out, n, "ok");
}

static void c_read_syscall(struct ctx *c, char *out, size_t n)
{
	char b[16];

	out_errno(out, n, read(c->fd, b, sizeof(b)) < 0 ? -errno : 0);
}

static void c_write_syscall(struct ctx *c, char *out, size_t n)
{
	char b[16] = { 0 };

	out_errno(out, n, write(c->fd, b, sizeof(b)) < 0 ? -errno : 0);
}

/* unmap the middle page of a three-page BAR mapping */
static void munmap_part_case(char *out, size_t n, const char *strategy)
{
	int fd = dev_open(O_RDWR);
	uint8_t *p = map_id(fd, strategy_named(strategy)->id, 3 * page_size,
			    PROT_READ | PROT_WRITE, MAP_SHARED);

	if (p == MAP_FAILED) {
		snprintf(out, n, "mmap-%s", errname(errno));
	} else {
		out_errno(out, n, munmap(p + page_size, page_size) ? -errno : 0);
		munmap(p, 3 * page_size);
	}
	close(fd);
}

static void c_munmap_part_bar(struct ctx *c, char *out, size_t n)
{
	munmap_part_case(out, n, "bar");
}

static void c_munmap_part_bar_remap(struct ctx *c, char *out, size_t n)
{
	munmap_part_case(out, n, "bar-remap");
}

static void mremap_shrink_case(char *out, size_t n, const char *strategy)
{
	int fd = dev_open(O_RDWR);
	void *p = map_id(fd, strategy_named(strategy)->id, 2 * page_size,
			 PROT_READ | PROT_WRITE, MAP_SHARED), *q;

	if (p == MAP_FAILED) {
		snprintf(out, n, "mmap-%s", errname(errno));
	} else {
		q = mremap(p, 2 * page_size, page_size, 0);
		out_errno(out, n, q == MAP_FAILED ? -errno : 0);
		munmap(p, q == MAP_FAILED ? 2 * page_size : page_size);
	}
	close(fd);
}

static void c_mremap_shrink_bar(struct ctx *c, char *out, size_t n)
{
	mremap_shrink_case(out, n, "bar");
}

static void c_mremap_shrink_bar_remap(struct ctx *c, char *out, size_t n)
{
	mremap_shrink_case(out, n, "bar-remap");
}

/*
 * One file holds a mapping of `first` in `mode1`; another maps `second` in
 * `mode2`: the outcome of that second mmap, and the INFO mode in force.
 */
static void cache_conflict_case(char *out, size_t n, const char *first,
				uint32_t mode1, const char *second,
				uint32_t mode2)
{
	int fd1 = dev_open(O_RDWR), fd2 = dev_open(O_RDWR);
	struct barmap_info info;
	void *p, *q;

	set_cache(fd1, mode1);
	set_cache(fd2, mode2);
	p = map_id(fd1, strategy_named(first)->id, page_size,
		   PROT_READ | PROT_WRITE, MAP_SHARED);
	if (p == MAP_FAILED) {
		snprintf(out, n, "mmap-%s", errname(errno));
		goto out;
	}
	q = map_id(fd2, strategy_named(second)->id, page_size,
		   PROT_READ | PROT_WRITE, MAP_SHARED);
	get_info(fd2, &info);
	if (q == MAP_FAILED)
		snprintf(out, n, "errno=%s,in-force=%s", errname(errno),
			 cache_name(info.bar_mode));
	else
		snprintf(out, n, "ok,in-force=%s", cache_name(info.bar_mode));
	if (q != MAP_FAILED)
		munmap(q, page_size);
	munmap(p, page_size);
out:
	close(fd1);
	close(fd2);
}

static void c_uc_while_wc(struct ctx *c, char *out, size_t n)
{
	cache_conflict_case(out, n, "bar", BARMAP_CACHE_WC, "bar",
			    BARMAP_CACHE_UC);
}

static void c_wc_while_uc(struct ctx *c, char *out, size_t n)
{
	cache_conflict_case(out, n, "bar", BARMAP_CACHE_UC, "bar",
			    BARMAP_CACHE_WC);
}

static void c_uc_remap_while_wc(struct ctx *c, char *out, size_t n)
{
	cache_conflict_case(out, n, "bar", BARMAP_CACHE_WC, "bar-remap",
			    BARMAP_CACHE_UC);
}

static void c_same_mode_shared(struct ctx *c, char *out, size_t n)
{
	cache_conflict_case(out, n, "bar-remap", BARMAP_CACHE_WC, "bar",
			    BARMAP_CACHE_WC);
}

/* once every mapping is gone the mode is free again */
static void c_mode_after_unmap(struct ctx *c, char *out, size_t n)
{
	struct barmap_info info;
	int fd = dev_open(O_RDWR);
	void *p;

	set_cache(fd, BARMAP_CACHE_WC);
	p = map_id(fd, BARMAP_MMAP_ID_BAR, page_size, PROT_READ, MAP_SHARED);
	if (p != MAP_FAILED)
		munmap(p, page_size);
	get_info(fd, &info);
	snprintf(out, n, "in-force=%s", cache_name(info.bar_mode));
	close(fd);
}

static const struct hcase hcases[] = {
	{ "bar-past-end", "errno=EINVAL", c_bar_past_end, true },
	{ "unknown-buffer-id", "errno=EINVAL", c_unknown_buf, true },
	{ "id-gap", "errno=EINVAL", c_id_gap, true },
	{ "id-above-max", "errno=EINVAL", c_id_above, true },
	{ "map-private", "errno=EINVAL", c_map_private, true },
	{ "map-private-readonly", "errno=EINVAL", c_map_private_ro, true },
	{ "bad-ioctl", "errno=ENOTTY", c_bad_ioctl, true },
	{ "ioctl-wrong-magic", "errno=ENOTTY", c_wrong_magic, true },
	{ "ioctl-wrong-size", "errno=ENOTTY", c_wrong_size, true },
	{ "info-null", "errno=EFAULT", c_info_null, false },
	{ "info-readonly-buffer", "errno=EFAULT", c_info_readonly, false },
	{ "alloc-zero", "errno=EINVAL", c_alloc_zero, true },
	{ "alloc-too-big", "errno=EINVAL", c_alloc_huge, true },
	{ "alloc-u64-max", "errno=EINVAL", c_alloc_u64max, false },
	{ "alloc-bad-kind", "errno=EINVAL", c_alloc_bad_kind, true },
	{ "alloc-null", "errno=EFAULT", c_alloc_null, false },
	{ "alloc-exhaust", "errno=ENOSPC", c_alloc_exhaust, false },
	{ "free-bar-id", "errno=EINVAL", c_free_bad, true },
	{ "free-unknown", "errno=EINVAL", c_free_unknown, true },
	{ "free-twice", "errno=EINVAL", c_free_twice, false },
	{ "free-while-mapped", "errno=EBUSY", c_free_mapped, true },
	{ "free-while-partly-mapped", "errno=EBUSY", c_free_partly_mapped, false },
	{ "set-cache-2", "errno=EINVAL", c_cache_bad, true },
	{ "set-cache-u32-max", "errno=EINVAL", c_cache_max, false },
	{ "set-cache-null", "errno=EFAULT", c_cache_null, false },
	{ "dma-valid", "ok", c_dma_ok, false },
	{ "dma-len-0", "errno=EINVAL", c_dma_len0, true },
	{ "dma-len-above-max", "errno=EINVAL", c_dma_len_max, false },
	{ "dma-bar-past-end", "errno=EINVAL", c_dma_bar_end, true },
	{ "dma-bar-off-wraps", "errno=EINVAL", c_dma_bar_wrap, false },
	{ "dma-buf-past-end", "errno=EINVAL", c_dma_buf_end, true },
	{ "dma-buf-off-wraps", "errno=EINVAL", c_dma_buf_wrap, false },
	{ "dma-unknown-id", "errno=EINVAL", c_dma_bad_id, true },
	{ "dma-bar-id", "errno=EINVAL", c_dma_bar_id, false },
	{ "dma-bad-dir", "errno=EINVAL", c_dma_bad_dir, true },
	{ "dma-bad-timeout", "errno=EINVAL", c_dma_bad_timeout, false },
	{ "dma-null", "errno=EFAULT", c_dma_null, false },
	{ "mmap-len-0", "errno=EINVAL", c_mmap_len0, false },
	{ "mmap-unaligned-offset", "errno=EINVAL", c_mmap_unaligned, false },
	{ "mmap-huge-offset", "errno=EINVAL", c_mmap_huge_off, false },
	{ "buffer-past-end", "errno=EINVAL", c_buf_past_end, true },
	{ "reserved", "@reserved", c_reserved, false },
	{ "reserved-past-end", "@reserved-past-end", c_reserved_past_end, false },
	{ "readonly-fd-prot-write", "errno=EACCES", c_readonly_fd_write, false },
	{ "readonly-fd-prot-read", "ok", c_readonly_fd_read, false },
	{ "readonly-fd-info", "ok", c_readonly_fd_info, false },
	{ "readonly-fd-alloc", "errno=EBADF", c_readonly_fd_alloc, false },
	{ "readonly-fd-free", "errno=EBADF", c_readonly_fd_free, false },
	{ "readonly-fd-dma", "errno=EBADF", c_readonly_fd_dma, false },
	{ "readonly-fd-set-cache", "errno=EBADF", c_readonly_fd_set_cache, false },
	{ "mremap-grow", "errno=EFAULT", c_mremap_grow, true },
	{ "mremap-grow-in-place", "errno=EFAULT", c_mremap_grow_inplace, false },
	{ "mremap-grow-buffer", "errno=EFAULT", c_mremap_grow_buf, false },
	{ "mremap-shrink-buffer", "ok", c_mremap_shrink, false },
	{ "mremap-shrink-bar", "ok", c_mremap_shrink_bar, false },
	{ "mremap-shrink-bar-remap", "errno=EINVAL", c_mremap_shrink_bar_remap, false },
	{ "munmap-part-bar", "ok", c_munmap_part_bar, false },
	{ "munmap-part-bar-remap", "errno=EINVAL", c_munmap_part_bar_remap, false },
	{ "uc-while-wc-mapped", "errno=EBUSY,in-force=wc", c_uc_while_wc, false },
	{ "wc-while-uc-mapped", "errno=EBUSY,in-force=uc", c_wc_while_uc, false },
	{ "uc-remap-while-wc-mapped", "errno=EBUSY,in-force=wc", c_uc_remap_while_wc, false },
	{ "wc-shared-across-strategies", "ok,in-force=wc", c_same_mode_shared, false },
	{ "mode-free-after-unmap", "in-force=none", c_mode_after_unmap, false },
	{ "madvise-dontneed", "errno=EINVAL", c_madv_dontneed, false },
	{ "fork-write-bar", "shared", c_fork_bar, false },
	{ "fork-write-buffer", "shared", c_fork_buf, false },
	{ "close-before-munmap", "ok", c_close_first, false },
	{ "access-after-munmap", "signal=SIGSEGV", c_after_munmap, false },
	{ "read-syscall", "errno=EINVAL", c_read_syscall, false },
	{ "write-syscall", "errno=EINVAL", c_write_syscall, false },
};

int cmd_matrix(bool refusals_only)
{
	struct ctx c;
	unsigned int i;
	int bad = 0, ran = 0;
	char got[128];

	c.fd = dev_open(O_RDWR);
	if (get_info(c.fd, &c.info)) {
		fprintf(stderr, "INFO failed: %s\n", strerror(errno));
		return 2;
	}
	guard_install();
	for (i = 0; i < sizeof(hcases) / sizeof(hcases[0]); i++) {
		const struct hcase *h = &hcases[i];
		const char *expect = h->expect;
		bool ok;

		if (refusals_only && !h->refusal)
			continue;
		if (!strcmp(expect, "@reserved"))
			expect = c.info.reserved_size ? "ok" : "errno=ENODEV";
		else if (!strcmp(expect, "@reserved-past-end"))
			expect = c.info.reserved_size ? "errno=EINVAL" :
							"errno=ENODEV";
		got[0] = 0;
		h->fn(&c, got, sizeof(got));
		ok = !strcmp(got, expect);
		bad += !ok;
		ran++;
		rec_begin();
		rec_s(refusals_only ? "refusal" : "case", h->name);
		if (!strncmp(got, "errno=", 6))
			rec_s("errno", got + 6);
		else
			rec_s("outcome", got);
		if (!ok)
			rec_s("expected", expect);
		rec_end(ok ? "ok" : "FAIL");
	}
	close(c.fd);
	if (!opt.json)
		printf("%d passed, %d failed\n", ran - bad, bad);
	return bad ? 1 : 0;
}

