// SPDX-License-Identifier: GPL-2.0-only
/*
 * The atlas: every row (strategy) through the same scenarios, one JSON line
 * per cell.  Each cell runs in a child of its own (a crash, a signal or a
 * hang of one cell is that cell's result, never the next one's), which
 * sends its result up a pipe; the parent kills what is left after the
 * cell's deadline.  A line starting "@atlas " asks the host for something
 * (a read of physical memory, a QMP removal); a host-view cell waits for a
 * line on stdin before it lets its memory go.
 */
#include "check.h"	/* first: _GNU_SOURCE */

#include <linux/io_uring.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#define CELL_TEXT 200

struct cell {
	char verdict[16];	/* ok refused wrong revoked kept blocked info n/a error host */
	char value[CELL_TEXT];	/* what was measured, in words */
	char err[24];		/* the errno name, if any */
	char sig[16];		/* the signal name, if any */
	char detail[CELL_TEXT];
	double num;		/* the measured number, if has_num */
	bool has_num;
};

/* the write end of the cell's result pipe: whoever reports last, reports */
static int cell_result_fd = -1;
static bool cell_reported;

static void cell_report(const struct cell *c)
{
	cell_reported = true;
	if (write(cell_result_fd, c, sizeof(*c)) != sizeof(*c))
		_exit(3);
}

struct scenario {
	const char *name;
	void (*run)(const struct strategy *st, struct cell *c);
	double timeout;		/* seconds; races scale it by --count */
	const char *what;	/* what the cell tries, in a line */
};

/* ---- a cell's object: open, map, close ---- */

struct actx {
	int fd;			/* /dev/barmapN, -1 for a row without one */
	struct barmap_info info;
	struct target t;
	size_t len;
	uint8_t *p;
};

static void verdict(struct cell *c, const char *v, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void verdict(struct cell *c, const char *v, const char *fmt, ...)
{
	va_list ap;

	snprintf(c->verdict, sizeof(c->verdict), "%s", v);
	va_start(ap, fmt);
	vsnprintf(c->value, sizeof(c->value), fmt, ap);
	va_end(ap);
}

static void cell_errno(struct cell *c, const char *v, int e, const char *what)
{
	snprintf(c->err, sizeof(c->err), "%s", errname(e));
	verdict(c, v, "%s: %s", what, errname(e));
}

static const char *signame(int sig)
{
	switch (sig) {
	case SIGBUS: return "SIGBUS";
	case SIGSEGV: return "SIGSEGV";
	case SIGKILL: return "SIGKILL";
	case SIGALRM: return "SIGALRM";
	case 0: return "";
	}
	return strsignal(sig);
}

static uint64_t pages(uint64_t n)
{
	return n * page_size;
}

/*
 * ---- teardown: a cell that forks or makes pipes ends every path in these,
 * as a kselftest fixture's teardown runs whatever the test did ----
 */

/* close what is still open of a pipe; { -1, -1 } is closed */
static void pipe_close(int p[2])
{
	for (int i = 0; i < 2; i++) {
		if (p[i] >= 0)
			close(p[i]);
		p[i] = -1;
	}
}

/* reap a child that has ended or is ending (kill it first) */
static void child_wait(pid_t *pid, int *status)
{
	if (*pid > 0)
		waitpid(*pid, status, 0);
	*pid = -1;
}

/* kill and reap a child that is still there; -1 is none */
static void child_end(pid_t *pid)
{
	if (*pid > 0)
		kill(*pid, SIGKILL);
	child_wait(pid, NULL);
}

/* nothing open: what cell_close() may take */
static void cell_init(struct actx *a)
{
	memset(a, 0, sizeof(*a));
	a->p = MAP_FAILED;
	a->fd = -1;
	a->t.fd = a->t.map_fd = a->t.vfio_group = a->t.vfio_container = -1;
}

/* the row's object mapped read-write, want bytes (0: all of it) */
static bool cell_open(const struct strategy *st, size_t want, struct actx *a,
		      struct cell *c)
{
	int ret;

	cell_init(a);
	a->fd = open(opt.dev, O_RDWR | O_CLOEXEC);
	if (a->fd < 0 && driver_row(st)) {
		cell_errno(c, "error", errno, "open");
		return false;
	}
	if (a->fd >= 0)
		get_info(a->fd, &a->info);
	ret = target_get(a->fd, &a->info, st, want, &a->t);
	if (ret == -ENODEV) {
		verdict(c, "n/a", "nothing to map here");
		return false;
	}
	if (ret) {
		cell_errno(c, "error", -ret, "set-up");
		return false;
	}
	a->len = want && want < a->t.size ? want : a->t.size;
	a->p = target_map(&a->t, a->len, PROT_READ | PROT_WRITE);
	if (a->p == MAP_FAILED) {
		cell_errno(c, "error", errno, "mmap");
		return false;
	}
	return true;
}

/* idempotent: every path of a cell ends here */
static void cell_close(struct actx *a)
{
	if (a->p != MAP_FAILED)
		munmap(a->p, a->len);
	a->p = MAP_FAILED;
	target_put(&a->t);
	if (a->fd >= 0)
		close(a->fd);
	a->fd = -1;
}

/* the offset pattern (pattern.c's "offset") of the n bytes at object offset base */
static void fill_at(uint8_t *exp, size_t n, size_t base, uint64_t seed)
{
	for (size_t i = 0; i < n; i += 4) {
		uint32_t w = (uint32_t)(base + i) ^ (uint32_t)seed;

		memcpy(exp + i, &w, n - i < 4 ? n - i : 4);
	}
}

/* fill n bytes at p + off with the offset pattern, CPU access bracketed */
static void put_pattern(struct actx *a, size_t off, size_t n, uint64_t seed)
{
	uint8_t *exp = malloc(n);

	fill_at(exp, n, off, seed);
	buf_sync(&a->t, true);
	write_width(a->p + off, exp, n, 32);
	buf_sync(&a->t, false);
	free(exp);
}

/* mismatching bytes of p against the pattern at off; *what the uniform case */
static uint64_t diff_pattern(const uint8_t *p, size_t off, size_t n,
			     uint64_t seed, const char **what)
{
	uint8_t *exp = malloc(n), *got = malloc(n);
	uint64_t bad = 0;
	size_t i, ff = 0, zero = 0;

	fill_at(exp, n, off, seed);
	read_width(got, p + off, n, 32);
	for (i = 0; i < n; i++) {
		bad += exp[i] != got[i];
		ff += got[i] == 0xff;
		zero += got[i] == 0;
	}
	*what = ff == n ? "all 0xff" : zero == n ? "all 0x00" : "";
	free(exp);
	free(got);
	return bad;
}

static uint64_t check_pattern(struct actx *a, size_t off, size_t n,
			      uint64_t seed, const char **what)
{
	uint64_t bad;

	buf_sync(&a->t, true);
	bad = diff_pattern(a->p, off, n, seed, what);
	buf_sync(&a->t, false);
	return bad;
}

static void pattern_verdict(struct cell *c, uint64_t bad, size_t n,
			    const char *what, const char *ok_text)
{
	if (!bad)
		verdict(c, "ok", "%s", ok_text);
	else
		verdict(c, "wrong", "%" PRIu64 " of %zu bytes wrong%s%s", bad, n,
			*what ? ": " : "", what);
}

/* ---- the scenarios ---- */

static void sc_readback(const struct strategy *st, struct cell *c)
{
	struct actx a;
	const char *what = "";
	uint64_t bad;

	if (!cell_open(st, 1 << 20, &a, c))
		goto out;
	put_pattern(&a, 0, a.len, opt.seed);
	bad = check_pattern(&a, 0, a.len, opt.seed, &what);
	pattern_verdict(c, bad, a.len, what, "every byte of the offset pattern");
	c->num = a.len;
	c->has_num = true;
out:
	cell_close(&a);
}

static int read_pte(int fd, const void *addr, struct barmap_pte *pte)
{
	memset(pte, 0, sizeof(*pte));
	pte->addr = (uintptr_t)addr;
	if (fd < 0)
		return -ENODEV;
	return ioctl(fd, BARMAP_IOC_PTE, pte) ? -errno : 0;
}

/* a barmap fd for BARMAP_IOC_PTE: the cell's own, or /dev/barmapN's */
static int pte_fd(const struct actx *a)
{
	return a->fd >= 0 ? a->fd : open(opt.dev, O_RDONLY | O_CLOEXEC);
}

/*
 * The guest writes the pattern, says which frames hold it, and waits for the
 * host to read them (QMP pmemsave): the host gives the verdict.
 */
static void sc_host_view(const struct strategy *st, struct cell *c)
{
	size_t n = pages(16), off, used = 0;
	struct barmap_pte pte;
	char line[64];
	struct actx a;
	int fd;

	if (!cell_open(st, n, &a, c))
		goto out;
	fd = pte_fd(&a);
	put_pattern(&a, 0, a.len, opt.seed);
	verdict(c, "host", "seed=%#" PRIx64 " pfns=", opt.seed);
	used = strlen(c->value);
	for (off = 0; off < a.len; off += page_size) {
		volatile uint8_t touch = a.p[off];	/* fault it in */

		(void)touch;
		if (read_pte(fd, a.p + off, &pte) || !pte.pfn) {
			verdict(c, "n/a", "no page-table entry to read the frame from");
			goto out;
		}
		used += snprintf(c->value + used, sizeof(c->value) - used,
				 "%s%" PRIx64, off ? "," : "", (uint64_t)pte.pfn);
		if (used >= sizeof(c->value) - 1) {
			verdict(c, "error", "too many frames");
			goto out;
		}
	}
	printf("@atlas host-view row=%s %s\n", st->name, c->value);
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))	/* the host has read */
		verdict(c, "error", "no answer from the host");
out:
	cell_close(&a);
}

/* DMA of n bytes between the row's memory and BAR2 through a buffer id */
static int dma_all(int fd, uint32_t id, uint64_t bar_off, size_t n, uint32_t dir)
{
	uint32_t status;

	return do_dma(fd, id, bar_off, 0, n, dir, &status);
}

/*
 * The device reads (dma-read) or writes (dma-write) the mapped memory.  A
 * buffer row moves it to or from BAR2 and BAR2 is read through a fault-time
 * mapping; a BAR row's memory is BAR2, moved through a coherent buffer.
 */
static void sc_dma(const struct strategy *st, struct cell *c, bool device_writes)
{
	size_t n = pages(16);
	uint32_t helper = 0;
	uint8_t *other = MAP_FAILED;
	uint64_t bar_off, bad;
	const char *what = "";
	struct actx a;
	int ret;

	if (st->obj != OBJ_BUF && st->obj != OBJ_BAR) {
		verdict(c, "n/a", "the device's DMA engine cannot reach it");
		return;
	}
	if (!cell_open(st, n, &a, c))
		goto out;
	/* a buffer moves to and from the top of BAR2; a BAR row's is its start */
	bar_off = st->obj == OBJ_BUF ? a.info.bar_size - n : 0;
	if (st->obj == OBJ_BUF) {
		other = map_id(a.fd, BARMAP_MMAP_ID_BAR, a.info.bar_size,
			       PROT_READ | PROT_WRITE, MAP_SHARED);
		if (other == MAP_FAILED) {
			cell_errno(c, "error", errno, "BAR mmap");
			goto out;
		}
		other += bar_off;
	} else {
		if (buf_alloc(a.fd, n, &helper) ||
		    (other = map_id(a.fd, helper, n, PROT_READ | PROT_WRITE,
				    MAP_SHARED)) == MAP_FAILED) {
			cell_errno(c, "error", errno, "helper buffer");
			goto out;
		}
	}
	if (device_writes) {
		/* the source outside the row, a different fill in the row */
		uint8_t *exp = malloc(n);

		fill_pattern(exp, n, "offset", opt.seed ^ 0xd3a);
		write_width(other, exp, n, 32);
		free(exp);
		memset(a.p, 0xa5, a.len);
		if (st->obj == OBJ_BUF)
			ret = dma_all(a.fd, a.t.id, bar_off, n, BARMAP_DMA_FROM_DEV);
		else
			ret = dma_all(a.fd, helper, bar_off, n, BARMAP_DMA_TO_DEV);
		if (!ret)
			bad = check_pattern(&a, 0, n, opt.seed ^ 0xd3a, &what);
	} else {
		put_pattern(&a, 0, n, opt.seed ^ 0xd3b);
		memset(other, 0x5a, n);
		if (st->obj == OBJ_BUF)
			ret = dma_all(a.fd, a.t.id, bar_off, n, BARMAP_DMA_TO_DEV);
		else
			ret = do_dma(a.fd, helper, 0, 0, n, BARMAP_DMA_FROM_DEV,
				     NULL);
		if (!ret)
			bad = diff_pattern(other, 0, n, opt.seed ^ 0xd3b, &what);
	}
	if (ret)
		cell_errno(c, ret == -EINVAL ? "refused" : "wrong", -ret, "DMA");
	else
		pattern_verdict(c, bad, n, what, device_writes ?
				"the CPU sees what the device wrote" :
				"the device read what the CPU wrote");
out:
	if (other != MAP_FAILED && st->obj == OBJ_BUF)
		munmap(other - bar_off, a.info.bar_size);
	else if (other != MAP_FAILED)
		munmap(other, n);
	if (helper)
		buf_free(a.fd, helper);
	cell_close(&a);
}

static void sc_dma_read(const struct strategy *st, struct cell *c)
{
	sc_dma(st, c, false);
}

static void sc_dma_write(const struct strategy *st, struct cell *c)
{
	sc_dma(st, c, true);
}

/*
 * A fork's child sees the parent's bytes, the parent the child's, and the
 * child keeps them after the parent has exited: the child reports the cell.
 */
static void sc_fork(const struct strategy *st, struct cell *c)
{
	int to_parent[2] = { -1, -1 }, to_child[2] = { -1, -1 };
	size_t n = pages(4);
	const char *what = "";
	struct actx a;
	char r = 0;
	pid_t pid = -1;

	if (!cell_open(st, n, &a, c))
		goto out;
	put_pattern(&a, 0, a.len, opt.seed);
	if (pipe(to_parent) || pipe(to_child)) {
		cell_errno(c, "error", errno, "pipe");
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		cell_errno(c, "error", errno, "fork");
		goto out;
	}
	if (!pid) {
		char go;

		close(to_parent[0]);
		close(to_child[1]);
		if (check_pattern(&a, 0, a.len, opt.seed, &what)) {
			verdict(c, "wrong", "the child did not see the parent's bytes");
			cell_report(c);
			_exit(0);
		}
		put_pattern(&a, 0, a.len, opt.seed ^ 0xf0);
		if (write(to_parent[1], &r, 1) != 1)
			_exit(3);
		while (read(to_child[0], &go, 1) > 0)
			;	/* end of file: the parent has exited */
		if (check_pattern(&a, 0, a.len, opt.seed ^ 0xf0, &what))
			verdict(c, "wrong", "the child lost the bytes when the parent exited");
		else
			verdict(c, "ok", "shared both ways, kept by the child after the parent exited");
		cell_report(c);
		_exit(0);
	}
	close(to_child[0]);
	to_child[0] = -1;
	close(to_parent[1]);	/* a child that reported and went: end of file */
	to_parent[1] = -1;
	if (read(to_parent[0], &r, 1) != 1) {
		child_wait(&pid, NULL);	/* the child reported */
		goto out;
	}
	if (check_pattern(&a, 0, a.len, opt.seed ^ 0xf0, &what)) {
		verdict(c, "wrong", "the parent did not see the child's bytes");
		goto out;
	}
	/*
	 * The child reports once this process has let go of the object (the
	 * end of to_child, closed last); the runner reaps it (subreaper).
	 */
	cell_reported = true;
	pid = -1;
out:
	child_end(&pid);
	cell_close(&a);
	pipe_close(to_parent);
	pipe_close(to_child);
}

static uint32_t pattern_word(size_t off, uint64_t seed)
{
	uint32_t w;

	fill_at((uint8_t *)&w, 4, off, seed);
	return w;
}

/* a debugger: PTRACE_PEEKDATA and POKEDATA on a traced child's mapping */
static void sc_ptrace(const struct strategy *st, struct cell *c)
{
	size_t n = pages(2), off = page_size + 8;
	struct actx a;
	long word;
	int status = 0, peek_err = 0, poke_err = 0;
	pid_t pid = -1;

	if (!cell_open(st, n, &a, c))
		goto out;
	put_pattern(&a, 0, a.len, opt.seed);
	pid = fork();
	if (pid < 0) {
		cell_errno(c, "error", errno, "fork");
		goto out;
	}
	if (!pid) {
		ptrace(PTRACE_TRACEME, 0, NULL, NULL);
		raise(SIGSTOP);
		_exit(*(volatile uint32_t *)(a.p + off + 8) == 0xdeb06ed0 ? 0 : 1);
	}
	if (waitpid(pid, &status, 0) != pid) {
		cell_errno(c, "error", errno, "waitpid");
		goto out;
	}
	if (!WIFSTOPPED(status)) {
		pid = -1;	/* it ended, and is reaped */
		verdict(c, "error", "the traced child did not stop");
		goto out;
	}
	errno = 0;
	word = ptrace(PTRACE_PEEKDATA, pid, a.p + off, NULL);
	if (errno)
		peek_err = errno;
	if (ptrace(PTRACE_POKEDATA, pid, a.p + off + 8, (void *)0xdeb06ed0))
		poke_err = errno;
	ptrace(PTRACE_CONT, pid, NULL, NULL);
	child_wait(&pid, &status);
	if (peek_err || poke_err)
		cell_errno(c, "refused", peek_err ?: poke_err,
			   peek_err ? "PTRACE_PEEKDATA" : "PTRACE_POKEDATA");
	else if ((uint32_t)word != pattern_word(off, opt.seed))
		verdict(c, "wrong", "PEEKDATA read %#x, the mapping holds %#x",
			(uint32_t)word, pattern_word(off, opt.seed));
	else if (!WIFEXITED(status) || WEXITSTATUS(status))
		verdict(c, "wrong", "POKEDATA did not reach the mapping");
	else
		verdict(c, "ok", "PEEKDATA and POKEDATA");
out:
	child_end(&pid);
	cell_close(&a);
}

/* /proc/self/mem read and write (how gdb's x/ and set reach memory) */
static void sc_proc_mem(const struct strategy *st, struct cell *c)
{
	size_t n = pages(2), off = page_size + 16;
	uint32_t got[4], want = 0x70c3e3;
	struct actx a;
	int fd = -1;

	if (!cell_open(st, n, &a, c))
		goto out;
	put_pattern(&a, 0, a.len, opt.seed);
	fd = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		cell_errno(c, "error", errno, "open /proc/self/mem");
		goto out;
	}
	if (pread(fd, got, sizeof(got), (off_t)(uintptr_t)(a.p + off)) !=
	    sizeof(got)) {
		cell_errno(c, "refused", errno, "read");
		goto out;
	}
	if (got[0] != pattern_word(off, opt.seed)) {
		verdict(c, "wrong", "read %#x, the mapping holds %#x", got[0],
			pattern_word(off, opt.seed));
		goto out;
	}
	if (pwrite(fd, &want, 4, (off_t)(uintptr_t)(a.p + off)) != 4) {
		cell_errno(c, "refused", errno, "write");
		goto out;
	}
	if (*(volatile uint32_t *)(a.p + off) != want)
		verdict(c, "wrong", "the write did not reach the mapping");
	else
		verdict(c, "ok", "read and write");
out:
	if (fd >= 0)
		close(fd);
	cell_close(&a);
}

/* process_vm_readv/writev: no .access fallback, GUP only */
static void sc_process_vm(const struct strategy *st, struct cell *c)
{
	size_t n = pages(2), off = 64;
	uint32_t got[4], want[4] = { 0x9e01, 0x9e02, 0x9e03, 0x9e04 };
	struct iovec local = { got, sizeof(got) };
	struct iovec remote;
	struct actx a;

	if (!cell_open(st, n, &a, c))
		goto out;
	put_pattern(&a, 0, a.len, opt.seed);
	remote.iov_base = a.p + off;
	remote.iov_len = sizeof(got);
	if (process_vm_readv(getpid(), &local, 1, &remote, 1, 0) != sizeof(got)) {
		cell_errno(c, "refused", errno, "readv");
		goto out;
	}
	if (got[0] != pattern_word(off, opt.seed)) {
		verdict(c, "wrong", "readv read %#x", got[0]);
		goto out;
	}
	local.iov_base = want;
	if (process_vm_writev(getpid(), &local, 1, &remote, 1, 0) != sizeof(want)) {
		cell_errno(c, "refused", errno, "writev");
		goto out;
	}
	if (((volatile uint32_t *)(a.p + off))[3] != want[3])
		verdict(c, "wrong", "writev did not reach the mapping");
	else
		verdict(c, "ok", "readv and writev");
out:
	cell_close(&a);
}

/* O_DIRECT: the block layer pins the mapping's pages (GUP) for the I/O */
static void sc_o_direct(const struct strategy *st, struct cell *c, bool into)
{
	size_t n = pages(16);
	const char *what = "";
	struct actx a;
	void *bounce = NULL;
	int fd;
	ssize_t got;

	fd = open(opt.blockdev, O_RDWR | O_DIRECT | O_CLOEXEC);
	if (fd < 0) {
		verdict(c, "n/a", "no block device %s", opt.blockdev);
		return;
	}
	if (!cell_open(st, n, &a, c) || posix_memalign(&bounce, page_size, n))
		goto out;
	if (into) {
		/* the disk gets the pattern, then O_DIRECT reads it into the mapping */
		fill_pattern(bounce, n, "offset", opt.seed ^ 0x0d1);
		if (pwrite(fd, bounce, n, 0) != (ssize_t)n) {
			cell_errno(c, "error", errno, "write the disk");
			goto out;
		}
		memset(a.p, 0x3c, n);
		got = pread(fd, a.p, n, 0);
		if (got != (ssize_t)n)
			cell_errno(c, "refused", got < 0 ? errno : EIO, "read into it");
		else
			pattern_verdict(c, check_pattern(&a, 0, n, opt.seed ^ 0x0d1,
							 &what), n, what,
					"read from the disk into the mapping");
	} else {
		put_pattern(&a, 0, n, opt.seed ^ 0x0d2);
		got = pwrite(fd, a.p, n, 0);
		if (got != (ssize_t)n) {
			cell_errno(c, "refused", got < 0 ? errno : EIO, "write from it");
			goto out;
		}
		memset(bounce, 0, n);
		if (pread(fd, bounce, n, 0) != (ssize_t)n) {
			cell_errno(c, "error", errno, "read the disk");
			goto out;
		}
		pattern_verdict(c, diff_pattern(bounce, 0, n, opt.seed ^ 0x0d2, &what),
				n, what, "written from the mapping to the disk");
	}
out:
	free(bounce);
	close(fd);
	cell_close(&a);
}

static void sc_o_direct_read(const struct strategy *st, struct cell *c)
{
	sc_o_direct(st, c, true);
}

static void sc_o_direct_write(const struct strategy *st, struct cell *c)
{
	sc_o_direct(st, c, false);
}

/* io_uring's fixed buffers: a long-term pin of the mapping */
static void sc_io_uring(const struct strategy *st, struct cell *c)
{
	struct io_uring_params params = { 0 };
	struct iovec iov;
	struct actx a;
	int ring;

	ring = syscall(__NR_io_uring_setup, 4, &params);
	if (ring < 0) {
		verdict(c, "n/a", "no io_uring here: %s", errname(errno));
		return;
	}
	if (!cell_open(st, pages(16), &a, c))
		goto out;
	iov.iov_base = a.p;
	iov.iov_len = a.len;
	if (syscall(__NR_io_uring_register, ring, IORING_REGISTER_BUFFERS, &iov, 1))
		cell_errno(c, "refused", errno, "IORING_REGISTER_BUFFERS");
	else
		verdict(c, "ok", "registered as a fixed buffer");
	syscall(__NR_io_uring_register, ring, IORING_UNREGISTER_BUFFERS, NULL, 0);
out:
	close(ring);
	cell_close(&a);
}

/* vmsplice: the pipe takes the mapping's pages (GUP) */
static void sc_vmsplice(const struct strategy *st, struct cell *c)
{
	size_t n = pages(1);
	uint8_t *back = malloc(n);
	const char *what = "";
	struct iovec iov;
	struct actx a;
	int p[2] = { -1, -1 };
	ssize_t got;

	if (!cell_open(st, n, &a, c))
		goto out;
	put_pattern(&a, 0, n, opt.seed);
	if (pipe(p)) {
		cell_errno(c, "error", errno, "pipe");
		goto out;
	}
	iov.iov_base = a.p;
	iov.iov_len = n;
	got = vmsplice(p[1], &iov, 1, 0);
	if (got != (ssize_t)n) {
		cell_errno(c, "refused", got < 0 ? errno : EIO, "vmsplice");
		goto out;
	}
	if (read(p[0], back, n) != (ssize_t)n) {
		cell_errno(c, "error", errno, "read the pipe");
		goto out;
	}
	pattern_verdict(c, diff_pattern(back, 0, n, opt.seed, &what), n, what,
			"the pipe got the mapping's bytes");
out:
	pipe_close(p);
	free(back);
	cell_close(&a);
}

static void sc_munmap_part(const struct strategy *st, struct cell *c)
{
	struct actx a;
	const char *what = "";

	if (!cell_open(st, pages(3), &a, c))
		goto out;
	put_pattern(&a, 0, a.len, opt.seed);
	if (munmap(a.p + page_size, page_size)) {
		cell_errno(c, "refused", errno, "munmap of the middle page");
		goto out;
	}
	if (check_pattern(&a, 0, page_size, opt.seed, &what) ||
	    diff_pattern(a.p, 2 * page_size, page_size, opt.seed, &what))
		verdict(c, "wrong", "the pages left do not read back");
	else
		verdict(c, "ok", "the pages left read back");
	munmap(a.p, page_size);
	munmap(a.p + 2 * page_size, page_size);
	a.p = MAP_FAILED;
out:
	cell_close(&a);
}

static void sc_mremap(const struct strategy *st, struct cell *c, int how)
{
	size_t n = pages(2);
	const char *what = "";
	struct actx a;
	void *q, *to = MAP_FAILED;

	if (!cell_open(st, how == 2 ? pages(1) : n, &a, c))
		goto out;
	put_pattern(&a, 0, a.len, opt.seed);
	if (how == 0) {		/* move */
		to = mmap(NULL, n, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		q = mremap(a.p, n, n, MREMAP_MAYMOVE | MREMAP_FIXED, to);
	} else if (how == 1) {	/* shrink */
		q = mremap(a.p, n, pages(1), 0);
	} else {		/* grow */
		q = mremap(a.p, pages(1), n, MREMAP_MAYMOVE);
	}
	if (q == MAP_FAILED) {
		cell_errno(c, "refused", errno, "mremap");
		goto out;
	}
	a.p = q;
	a.len = how == 0 ? n : how == 1 ? pages(1) : n;
	if (check_pattern(&a, 0, pages(1), opt.seed, &what))
		verdict(c, "wrong", "the bytes did not follow");
	else
		verdict(c, "ok", "the bytes followed");
out:
	if (to != MAP_FAILED && a.p != to)
		munmap(to, n);
	cell_close(&a);
}

static void sc_mremap_move(const struct strategy *st, struct cell *c)
{
	sc_mremap(st, c, 0);
}

static void sc_mremap_shrink(const struct strategy *st, struct cell *c)
{
	sc_mremap(st, c, 1);
}

static void sc_mremap_grow(const struct strategy *st, struct cell *c)
{
	sc_mremap(st, c, 2);
}

static void sc_mprotect(const struct strategy *st, struct cell *c)
{
	uint32_t v = 0x5eed;
	struct actx a;
	int sig;

	if (!cell_open(st, pages(1), &a, c))
		goto out;
	guard_install();
	if (mprotect(a.p, page_size, PROT_READ)) {
		cell_errno(c, "refused", errno, "mprotect(PROT_READ)");
		goto out;
	}
	sig = guarded_rw32((volatile uint32_t *)a.p, &v, true);
	if (sig != SIGSEGV) {
		verdict(c, "wrong", "a write to the read-only mapping %s",
			sig ? signame(sig) : "went through");
		goto out;
	}
	if (mprotect(a.p, page_size, PROT_READ | PROT_WRITE)) {
		cell_errno(c, "refused", errno, "mprotect back to PROT_WRITE");
		goto out;
	}
	sig = guarded_rw32((volatile uint32_t *)a.p, &v, true);
	if (sig || *(volatile uint32_t *)a.p != v)
		verdict(c, "wrong", "writable again, but the write %s",
			sig ? signame(sig) : "did not land");
	else
		verdict(c, "ok", "read-only faults, writable again");
out:
	cell_close(&a);
}

/* ---- removal: the device the row's memory belongs to ---- */

static const char *ref_driver(const struct strategy *st)
{
	return st->obj == OBJ_VFIO ? "vfio-pci" : "barmap-atlas-none";
}

/* after a rescan: the reference device goes back to its driver (or none) */
static void ref_restore(const struct strategy *st, const char *bdf)
{
	char path[256];

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver_override", bdf);
	sysfs_write(path, ref_driver(st));
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver/unbind", bdf);
	sysfs_write(path, bdf);
	sysfs_write("/sys/bus/pci/drivers_probe", bdf);
}

/* the PCI directory of the row's device */
static int row_pci_dir(const struct actx *a, char *dir, size_t n)
{
	if (driver_row(a->t.st))
		return pci_dir_of(a->fd, dir, n);
	snprintf(dir, n, "/sys/bus/pci/devices/%s", a->t.bdf);
	return 0;
}

/*
 * The driver's device, by its PCI directory: removal gives it a new minor
 * (/dev/barmapN), so every cell looks it up again.
 */
static char atlas_pci_dir[300], atlas_dev[64];

static bool resolve_dev(void)
{
	char path[400];
	struct dirent *e;
	DIR *d;

	snprintf(path, sizeof(path), "%s/barmap", atlas_pci_dir);
	d = opendir(path);
	while (d && (e = readdir(d))) {
		if (!strncmp(e->d_name, "barmap", 6)) {
			snprintf(atlas_dev, sizeof(atlas_dev), "/dev/%.50s", e->d_name);
			opt.dev = atlas_dev;
			closedir(d);
			return true;
		}
	}
	if (d)
		closedir(d);
	return false;
}

/* the identity of a sysfs directory: a device added again gets a new one */
static ino_t dir_ino(const char *dir)
{
	struct stat st;

	return stat(dir, &st) ? 0 : st.st_ino;
}

/*
 * Wait for the row's device to be back and usable: a driver row's as a new
 * barmapN (old_minor: the gone one's, still held), a reference row's as a
 * new sysfs directory (not old_ino), given back to its driver or to none.
 */
static bool device_back(const struct strategy *st, const char *dir,
			uint32_t old_minor, ino_t old_ino, double secs)
{
	int fd;

	if (driver_row(st)) {
		fd = open_pci_dev(dir, old_minor, secs);
		if (fd < 0)
			return false;
		close(fd);
		return resolve_dev();
	}
	for (double end = now() + secs; now() < end; usleep(2000)) {
		const char *bdf = strrchr(dir, '/') + 1;
		char drv[64], file[320];
		ino_t ino = dir_ino(dir);

		if (!ino || ino == old_ino)
			continue;
		/* a driver's probe may still be on its way: until the state holds */
		ref_restore(st, bdf);
		pci_driver_of(bdf, drv, sizeof(drv));
		snprintf(file, sizeof(file), "%s/resource2", dir);
		if (!strcmp(drv, st->obj == OBJ_VFIO ? "vfio-pci" : "") &&
		    !access(file, F_OK))	/* its files come after the directory */
			return true;
	}
	return false;
}

/*
 * A child that removes the device through sysfs once told to (a removal may
 * wait for the user): forked before the row's object is opened, so that it
 * holds none of it.
 */
static pid_t remover_start(const char *dir, int *go)
{
	char path[320];
	int p[2];
	pid_t pid;
	char c;

	*go = -1;
	if (pipe(p))
		return -1;
	pid = fork();
	if (pid < 0) {
		pipe_close(p);
		return -1;
	}
	if (!pid) {
		close(p[1]);
		if (read(p[0], &c, 1) != 1)
			_exit(2);
		snprintf(path, sizeof(path), "%s/remove", dir);
		_exit(sysfs_write(path, "1") ? 1 : 0);
	}
	close(p[0]);
	*go = p[1];
	return pid;
}

static bool wait_pid(pid_t pid, double secs)
{
	for (double end = now() + secs; now() < end; usleep(2000))
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return true;
	return false;
}

static void sc_unplug(const struct strategy *st, struct cell *c)
{
	uint32_t v = 0;
	char dir[300], got[64], ch = 0;
	int rsig, wsig, go = -1;
	struct actx a;
	pid_t remover = -1;
	const char *what;

	cell_init(&a);
	/* where the device is, then a remover that holds nothing of it */
	if (!cell_open(st, pages(2), &a, c))
		goto out;
	if (row_pci_dir(&a, dir, sizeof(dir))) {
		verdict(c, "error", "no PCI device behind the row");
		goto out;
	}
	cell_close(&a);
	remover = remover_start(dir, &go);
	if (remover < 0 || !cell_open(st, pages(2), &a, c))
		goto out;
	guard_install();
	put_pattern(&a, 0, a.len, opt.seed);
	if (write(go, &ch, 1) != 1 || !wait_pid(remover, 3)) {
		/* the removal waits: let go of everything, then it must finish */
		cell_close(&a);
		if (wait_pid(remover, 30))
			verdict(c, "blocked", "removal waited until the user let go");
		else
			verdict(c, "wrong", "removal never finished");
		remover = -1;	/* reaped, or stuck in the kernel: the runner's */
		goto back;
	}
	remover = -1;
	rsig = guarded_rw32((volatile uint32_t *)a.p, &v, false);
	if (!rsig && !diff_pattern(a.p, 0, page_size, opt.seed, &what)) {
		/* memory an fd owns may outlive the device; a BAR's address may not */
		verdict(c, st->obj == OBJ_BUF ? "kept" : "wrong",
			"still reads its bytes (not revoked)");
	} else if (!rsig) {
		snprintf(got, sizeof(got), "reads %#x", v);
		verdict(c, "wrong", "%s after removal (not revoked)", got);
	} else {
		wsig = guarded_rw32((volatile uint32_t *)a.p + 1, &v, true);
		verdict(c, "revoked", "read: %s, write: %s", signame(rsig),
			wsig ? signame(wsig) : "went through");
		snprintf(c->sig, sizeof(c->sig), "%s", signame(rsig));
		if (!wsig)
			snprintf(c->verdict, sizeof(c->verdict), "wrong");
	}
	cell_close(&a);
back:
	sysfs_write("/sys/bus/pci/rescan", "1");
	if (!device_back(st, dir, UINT32_MAX, 0, 20))	/* every file is closed */
		snprintf(c->detail, sizeof(c->detail), "the device did not come back");
out:
	child_end(&remover);
	if (go >= 0)
		close(go);
	cell_close(&a);
}

/* ---- mmap() racing removal, N cycles ---- */

struct race_result {
	int read_sig;		/* 0: the read returned a value */
	uint32_t read_val;
	int write_sig;
	bool mapped;		/* the child had a mapping when the device went */
};

#define RACE_MARKER	0x5a1e0000u
#define RACE_POISON	0xdeadbeefu

/*
 * Map the object over and over, keep the newest, until mmap() fails because
 * the device went away, or, for an object whose mappings outlive it, until
 * the parent says the device is back (*stop).
 */
static void race_child(const struct target *t, volatile int *stop, int started,
		       int go, int result)
{
	struct race_result r = { 0 };
	volatile uint32_t *prev = NULL, *q;
	uint32_t v;
	char c = 0;

	for (long i = 0; i < 10000000 && !*stop; i++) {
		q = target_map(t, page_size, PROT_READ | PROT_WRITE);
		if (q == MAP_FAILED)
			break;
		if (guarded_rw32(q, &v, false)) {	/* zapped already */
			munmap((void *)q, page_size);
			break;
		}
		if (prev)
			munmap((void *)prev, page_size);
		prev = q;
		if (!i && write(started, &c, 1) != 1)
			_exit(3);
	}
	if (!prev && write(started, &c, 1) != 1)	/* never mapped */
		_exit(3);
	if (read(go, &c, 1) != 1)
		_exit(3);
	r.mapped = prev != NULL;
	if (prev) {
		r.read_sig = guarded_rw32(prev, &r.read_val, false);
		v = RACE_POISON;
		r.write_sig = guarded_rw32(prev + 1, &v, true);
	}
	_exit(write(result, &r, sizeof(r)) == sizeof(r) ? 0 : 3);
}

/* what the cycles of a race cell found */
struct race_tally {
	long survivors, mapped, same_addr, reached;
};

/*
 * One cycle: a child maps the object of *a over and over while the device is
 * removed and comes back, then touches its newest mapping.  *a (its mapping
 * unmapped) becomes the device that came back.  Every path kills and reaps
 * the child, closes the pipes and the new device when it is not kept; false
 * with the cell's verdict set when the cycle could not run.
 */
static bool race_cycle(const struct strategy *st, struct cell *c, bool host,
		       const char *dir, long done, volatile int *stop,
		       struct actx *a, struct race_tally *t)
{
	int started[2] = { -1, -1 }, go[2] = { -1, -1 }, result[2] = { -1, -1 };
	uint32_t marker = RACE_MARKER | (uint32_t)done, minor = a->info.minor;
	uint64_t addr = st->obj == OBJ_BUF ? 0 : a->info.bar_phys;
	volatile uint32_t *np = MAP_FAILED;
	struct race_result r = { 0 };
	struct cell ignore = { 0 };
	char path[400], ch = 0;
	bool ok = false, back;
	pid_t pid = -1;
	struct actx b;
	ino_t ino;

	cell_init(&b);
	if (pipe(started) || pipe(go) || pipe(result)) {
		verdict(c, "error", "pipe");
		goto out;
	}
	ino = dir_ino(dir);
	*stop = 0;
	pid = fork();
	if (pid < 0) {
		cell_errno(c, "error", errno, "fork");
		goto out;
	}
	if (!pid) {
		close(started[0]);
		close(go[1]);
		close(result[0]);
		race_child(&a->t, stop, started[1], go[0], result[1]);
	}
	/* the child's ends: its death is an end of file here */
	close(started[1]);
	close(go[0]);
	close(result[1]);
	started[1] = go[0] = result[1] = -1;
	if (read(started[0], &ch, 1) != 1) {
		verdict(c, "error", "the mapping child died");
		goto out;
	}
	cell_close(a);		/* the child's mapping holds the object now */
	if (host) {
		printf("@atlas race cycle=%ld bdf=%s\n", done,
		       strrchr(dir, '/') + 1);
		fflush(stdout);
	} else {
		usleep(rng_below(3000));
		snprintf(path, sizeof(path), "%s/remove", dir);
		if (sysfs_write(path, "1") ||
		    sysfs_write("/sys/bus/pci/rescan", "1")) {
			verdict(c, "error", "remove/rescan failed");
			goto out;
		}
	}
	back = device_back(st, dir, minor, ino, host ? 120 : 20);
	*stop = 1;	/* the device is back: mapping the old one is over */
	if (!back || !cell_open(st, pages(1), &b, &ignore)) {
		verdict(c, "error", "no device after cycle %ld", done);
		goto out;
	}
	/* the device that came back: the parent marks it, the child looks */
	if (st->obj != OBJ_BUF) {
		t->same_addr += st->obj == OBJ_BAR && b.info.bar_phys == addr;
		np = (volatile uint32_t *)b.p;
		np[0] = marker;
		np[1] = 0;
	}
	if (write(go[1], &ch, 1) != 1 ||
	    read(result[0], &r, sizeof(r)) != sizeof(r)) {
		verdict(c, "error", "the mapping child died");
		goto out;
	}
	child_wait(&pid, NULL);
	t->mapped += r.mapped;
	if (r.mapped && !r.read_sig) {
		t->survivors++;
		t->reached += np != MAP_FAILED && np[1] == RACE_POISON;
	}
	*a = b;		/* the next cycle races the new device */
	munmap(a->p, a->len);
	a->p = MAP_FAILED;
	cell_init(&b);
	ok = true;
out:
	child_end(&pid);
	pipe_close(started);
	pipe_close(go);
	pipe_close(result);
	cell_close(&b);
	return ok;
}

static void sc_race(const struct strategy *st, struct cell *c, bool host)
{
	long cycles = opt.count ? opt.count : 200, done;
	volatile int *stop = MAP_FAILED;
	struct race_tally t = { 0 };
	char dir[300];
	struct actx a;
	double t0 = now();

	guard_install();
	if (st->obj == OBJ_VFIO) {
		verdict(c, "n/a", "removal waits for the user (see unplug)");
		return;
	}
	cell_init(&a);
	stop = mmap(NULL, page_size, PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (stop == MAP_FAILED) {
		cell_errno(c, "error", errno, "mmap the stop flag");
		goto out;
	}
	if (!cell_open(st, pages(1), &a, c))
		goto out;
	if (row_pci_dir(&a, dir, sizeof(dir))) {
		verdict(c, "error", "no PCI device behind the row");
		goto out;
	}
	munmap(a.p, a.len);
	a.p = MAP_FAILED;
	for (done = 0; done < cycles; done++)
		if (!race_cycle(st, c, host, dir, done, stop, &a, &t))
			goto out;
	c->num = t.survivors;
	c->has_num = true;
	snprintf(c->detail, sizeof(c->detail),
		 "cycles=%ld mapped=%ld same_address=%ld reached_next_device=%ld seconds=%.1f",
		 done, t.mapped, t.same_addr, t.reached, now() - t0);
	if (st->obj == OBJ_BUF && st->kind == BARMAP_BUF_DMABUF &&
	    t.survivors == done)
		verdict(c, "kept", "%ld of %ld kept (a dma-buf is never revoked)",
			t.survivors, done);
	else if (t.survivors)
		verdict(c, "wrong", "%ld of %ld survived removal%s", t.survivors,
			done, t.reached ? ", some reached the next device" : "");
	else
		verdict(c, "ok", "0 of %ld survived", done);
out:
	if (stop != MAP_FAILED)
		munmap((void *)stop, page_size);
	cell_close(&a);
}

static void sc_race_sysfs(const struct strategy *st, struct cell *c)
{
	sc_race(st, c, false);
}

static void sc_race_host(const struct strategy *st, struct cell *c)
{
	sc_race(st, c, true);
}

/* rmmod while only a mapping holds the driver (its files closed) */
static void sc_rmmod(const struct strategy *st, struct cell *c)
{
	const char *module = st->obj == OBJ_VFIO ? "vfio_pci" : "barmap";
	struct actx a;

	if (st->obj == OBJ_RESOURCE) {
		verdict(c, "n/a", "no driver holds the device");
		return;
	}
	if (!cell_open(st, pages(1), &a, c))
		goto out;
	if (a.t.map_fd != a.fd) {
		close(a.t.map_fd);	/* the mapping alone holds it now */
		a.t.map_fd = -1;
	}
	if (a.t.allocated)
		a.t.allocated = false;	/* closing the file frees the buffer */
	close(a.fd);
	a.fd = -1;
	if (!syscall(__NR_delete_module, module, O_NONBLOCK))
		verdict(c, "wrong", "%s unloaded under a mapping", module);
	else
		cell_errno(c, "refused", errno, errno == EAGAIN ?
			   "in use, the mapping holds it" : module);
out:
	cell_close(&a);
}

/* whole-object mapping, every page touched: the faults and the page-table level */
static void sc_huge(const struct strategy *st, struct cell *c)
{
	struct barmap_pte pte;
	struct rusage r0, r1;
	struct actx a;
	long faults;
	size_t off, pmd = 0;
	volatile uint8_t sum = 0;
	int fd;

	if (!cell_open(st, 16 << 20, &a, c))
		goto out;
	fd = pte_fd(&a);
	getrusage(RUSAGE_SELF, &r0);
	for (off = 0; off < a.len; off += page_size)
		sum += a.p[off];
	getrusage(RUSAGE_SELF, &r1);
	faults = r1.ru_minflt - r0.ru_minflt;
	for (off = 0; off < a.len; off += 2 << 20)
		if (!read_pte(fd, a.p + off, &pte) &&
		    pte.level == BARMAP_PTE_LEVEL_PMD)
			pmd++;
	if (fd < 0) {
		verdict(c, "n/a", "no page tables to read");
		goto out;
	}
	verdict(c, "info", "%s: %ld faults for %zu pages", pmd ? "PMD" : "PTE",
		faults, a.len / page_size);
	c->num = faults;
	c->has_num = true;
out:
	cell_close(&a);
}

static const char *memtype_name(uint32_t t)
{
	switch (t) {
	case BARMAP_MEMTYPE_NONE: return "none";
	case BARMAP_MEMTYPE_WB: return "WB";
	case BARMAP_MEMTYPE_WC: return "WC";
	case BARMAP_MEMTYPE_UC_MINUS: return "UC-";
	case BARMAP_MEMTYPE_UC: return "UC";
	case BARMAP_MEMTYPE_WT: return "WT";
	case BARMAP_MEMTYPE_WP: return "WP";
	case BARMAP_MEMTYPE_NORMAL: return "Normal";
	case BARMAP_MEMTYPE_NORMAL_TAGGED: return "Normal-Tagged";
	case BARMAP_MEMTYPE_NORMAL_NC: return "Normal-NC";
	case BARMAP_MEMTYPE_DEVICE_NGNRNE: return "Device-nGnRnE";
	case BARMAP_MEMTYPE_DEVICE_NGNRE: return "Device-nGnRE";
	}
	return "unknown";
}

/* the memory type the page tables hold for the first page (after SET_CACHE wc) */
static void sc_cache(const struct strategy *st, struct cell *c, bool wc)
{
	struct barmap_pte pte;
	struct actx a;
	int fd, ret;

	if (wc && st->obj != OBJ_BAR && st->obj != OBJ_RESERVED) {
		verdict(c, "n/a", "no cache mode to choose");
		return;
	}
	memset(&a, 0, sizeof(a));
	a.p = MAP_FAILED;
	a.t.fd = a.t.map_fd = a.t.vfio_group = a.t.vfio_container = -1;
	a.fd = open(opt.dev, O_RDWR | O_CLOEXEC);
	if (a.fd >= 0 && wc && set_cache(a.fd, BARMAP_CACHE_WC)) {
		cell_errno(c, "refused", errno, "SET_CACHE wc");
		goto out;
	}
	if (a.fd >= 0)
		get_info(a.fd, &a.info);
	ret = target_get(a.fd, &a.info, st, pages(1), &a.t);
	if (ret) {
		if (ret == -ENODEV)
			verdict(c, "n/a", "nothing to map here");
		else
			cell_errno(c, "error", -ret, "set-up");
		goto out;
	}
	a.len = pages(1);
	a.p = target_map(&a.t, a.len, PROT_READ | PROT_WRITE);
	if (a.p == MAP_FAILED) {
		cell_errno(c, wc ? "refused" : "error", errno, "mmap");
		goto out;
	}
	*(volatile uint8_t *)a.p = *(volatile uint8_t *)a.p;	/* now there is an entry */
	fd = pte_fd(&a);
	ret = read_pte(fd, a.p, &pte);
	if (ret) {
		verdict(c, "n/a", "page tables not readable: %s", errname(-ret));
		goto out;
	}
	verdict(c, "info", "%s", memtype_name(pte.memtype));
	snprintf(c->detail, sizeof(c->detail), "entry=%#" PRIx64 " level=%u%s",
		 (uint64_t)pte.entry, pte.level,
		 pte.flags & BARMAP_PTE_SPECIAL ? " special" : "");
out:
	cell_close(&a);
}

static void sc_cache_mode(const struct strategy *st, struct cell *c)
{
	sc_cache(st, c, false);
}

static void sc_cache_wc(const struct strategy *st, struct cell *c)
{
	sc_cache(st, c, true);
}

/* MB/s through the mapping, as a ratio to plain memory in the same run */
static void sc_bandwidth(const struct strategy *st, struct cell *c)
{
	size_t n = 1 << 20;
	uint8_t *ram = malloc(n), *ram2 = malloc(n);
	double w, r, rw, rr;
	struct actx a;

	if (!cell_open(st, n, &a, c))
		goto out;
	memset(ram, 0x5a, n);
	memset(ram2, 0xa5, n);
	rw = copy_rate(ram2, ram, n);
	w = copy_rate(a.p, ram, a.len);
	r = copy_rate(ram, a.p, a.len);
	rr = copy_rate(ram, ram2, n);
	verdict(c, "info", "write %.2fx, read %.2fx RAM", w / rw, r / rr);
	snprintf(c->detail, sizeof(c->detail),
		 "write %.0f MB/s, read %.0f MB/s, RAM %.0f/%.0f MB/s", w, r, rw, rr);
	c->num = r / rr;
	c->has_num = true;
out:
	free(ram);
	free(ram2);
	cell_close(&a);
}

/* mmap() plus the first touch of every page: the time and the faults */
static void sc_map_cost(const struct strategy *st, struct cell *c)
{
	struct rusage r0, r1;
	struct actx a;
	double t0, t;
	size_t off;

	if (!cell_open(st, 16 << 20, &a, c))	/* a buffer: as large as it gets */
		goto out;
	munmap(a.p, a.len);
	getrusage(RUSAGE_SELF, &r0);
	t0 = now();
	a.p = target_map(&a.t, a.len, PROT_READ | PROT_WRITE);
	if (a.p == MAP_FAILED) {
		cell_errno(c, "error", errno, "mmap");
		goto out;
	}
	for (off = 0; off < a.len; off += page_size)
		a.p[off] = 1;
	t = now() - t0;
	getrusage(RUSAGE_SELF, &r1);
	verdict(c, "info", "%zu MiB: %.1f ms, %ld faults", a.len >> 20, t * 1e3,
		r1.ru_minflt - r0.ru_minflt);
	c->num = t * 1e3 / (a.len >> 20 ? a.len >> 20 : 1);
	c->has_num = true;
out:
	cell_close(&a);
}

static const struct scenario scenarios[] = {
	{ "readback", sc_readback, 60,
	  "write the offset pattern through the mapping (up to 1 MiB), read it back" },
	{ "host-view", sc_host_view, 60,
	  "the host reads the mapped frames (QMP pmemsave) and finds the guest's pattern" },
	{ "dma-read", sc_dma_read, 60,
	  "the device's DMA engine reads what the CPU wrote through the mapping" },
	{ "dma-write", sc_dma_write, 60,
	  "the device's DMA engine writes, the CPU reads it through the mapping" },
	{ "fork", sc_fork, 60,
	  "a forked child sees the bytes, the parent sees the child's, the child keeps them after the parent exits" },
	{ "ptrace", sc_ptrace, 60,
	  "a debugger's PTRACE_PEEKDATA/POKEDATA on a traced child's mapping" },
	{ "proc-mem", sc_proc_mem, 60,
	  "read and write through /proc/self/mem (gdb's x and set)" },
	{ "process-vm", sc_process_vm, 60,
	  "process_vm_readv/writev (GUP only, no .access fallback)" },
	{ "o-direct-read", sc_o_direct_read, 60,
	  "an O_DIRECT read from a RAM disk into the mapping (GUP for writing)" },
	{ "o-direct-write", sc_o_direct_write, 60,
	  "an O_DIRECT write from the mapping to a RAM disk (GUP for reading)" },
	{ "io-uring", sc_io_uring, 60,
	  "register the mapping as an io_uring fixed buffer (a long-term pin)" },
	{ "vmsplice", sc_vmsplice, 60,
	  "vmsplice the mapping into a pipe, read the pipe" },
	{ "munmap-part", sc_munmap_part, 60,
	  "munmap the middle page of three; the rest still reads back" },
	{ "mremap-move", sc_mremap_move, 60,
	  "mremap to another address; the bytes follow" },
	{ "mremap-shrink", sc_mremap_shrink, 60,
	  "mremap to one page of two" },
	{ "mremap-grow", sc_mremap_grow, 60,
	  "mremap one page to two" },
	{ "mprotect", sc_mprotect, 60,
	  "PROT_READ makes a write fault, PROT_WRITE again makes it land" },
	{ "huge", sc_huge, 120,
	  "touch every page of the whole object: faults taken, PMD or PTE entries" },
	{ "cache-mode", sc_cache_mode, 60,
	  "the memory type the page tables hold for the first page" },
	{ "cache-wc", sc_cache_wc, 60,
	  "the same after SET_CACHE wc (BAR and reserved rows)" },
	{ "bandwidth", sc_bandwidth, 60,
	  "memcpy through 1 MiB of the mapping, as a ratio to plain RAM" },
	{ "map-cost", sc_map_cost, 120,
	  "mmap() plus the first touch of every page of the object (up to 16 MiB)" },
	{ "unplug", sc_unplug, 90,
	  "remove the device through sysfs while mapped, then touch the mapping" },
	{ "race-sysfs", sc_race_sysfs, 60,
	  "mmap() in a loop racing sysfs remove: mappings that survive removal" },
	{ "race-host", sc_race_host, 60,
	  "the same with the host removing the device (QMP device_del)" },
	{ "rmmod", sc_rmmod, 60,
	  "unload the driver while only a mapping holds it" },
};

/* ---- the runner: a child per cell ---- */

static void emit(const struct strategy *st, const char *scen,
		 const struct cell *c)
{
	printf("{\"row\": ");
	json_str(st->name);
	printf(", \"scenario\": ");
	json_str(scen);
	printf(", \"verdict\": ");
	json_str(c->verdict);
	printf(", \"value\": ");
	json_str(c->value);
	if (c->err[0]) {
		printf(", \"errno\": ");
		json_str(c->err);
	}
	if (c->sig[0]) {
		printf(", \"signal\": ");
		json_str(c->sig);
	}
	if (c->detail[0]) {
		printf(", \"detail\": ");
		json_str(c->detail);
	}
	if (c->has_num)
		printf(", \"number\": %.6g", c->num);
	printf("}\n");
	fflush(stdout);
}

/* kill whatever a cell left behind: its orphans are this process's (subreaper) */
static void reap_orphans(void)
{
	char path[64], stat[512];
	struct dirent *e;
	DIR *d = opendir("/proc");
	pid_t self = getpid();

	while (d && (e = readdir(d))) {
		pid_t pid = atoi(e->d_name), ppid = 0;
		char *close_paren;
		FILE *f;

		if (pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/stat", pid);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(stat, sizeof(stat), f) &&
		    (close_paren = strrchr(stat, ')')))
			sscanf(close_paren + 2, "%*c %d", &ppid);
		fclose(f);
		if (ppid == self) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
		}
	}
	if (d)
		closedir(d);
}

/* 1 when the cell is wrong or could not run, else 0 */
static int run_cell(const struct strategy *st, const struct scenario *sc)
{
	double timeout = sc->timeout, end;
	struct cell c = { 0 };
	int p[2] = { -1, -1 }, status = 0;
	struct pollfd pfd;
	ssize_t got = 0;
	pid_t pid = -1;

	if (!strncmp(sc->name, "race", 4))
		timeout += (opt.count ? opt.count : 200) * 3.0;
	if (pipe(p)) {
		verdict(&c, "error", "pipe: %s", errname(errno));
		goto out;
	}
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		verdict(&c, "error", "fork: %s", errname(errno));
		goto out;
	}
	if (!pid) {
		close(p[0]);
		cell_result_fd = p[1];
		rng_state = opt.seed | 1;
		sc->run(st, &c);
		if (!cell_reported)
			cell_report(&c);
		_exit(0);
	}
	close(p[1]);
	p[1] = -1;
	pfd.fd = p[0];
	pfd.events = POLLIN;
	end = now() + timeout;
	while (got < (ssize_t)sizeof(c) && now() < end) {
		ssize_t r;

		if (poll(&pfd, 1, 200) <= 0)
			continue;
		r = read(p[0], (char *)&c + got, sizeof(c) - got);
		if (r <= 0)
			break;	/* every writer is gone */
		got += r;
	}
	if (got != (ssize_t)sizeof(c))
		kill(pid, SIGKILL);
	child_wait(&pid, &status);
	reap_orphans();
	if (got != (ssize_t)sizeof(c)) {
		memset(&c, 0, sizeof(c));
		if (WIFSIGNALED(status) && WTERMSIG(status) != SIGKILL) {
			verdict(&c, "error", "the cell died of %s",
				signame(WTERMSIG(status)));
			snprintf(c.sig, sizeof(c.sig), "%s", signame(WTERMSIG(status)));
		} else {
			verdict(&c, "error", "no result within %.0f s", timeout);
		}
	}
out:
	child_end(&pid);
	pipe_close(p);
	emit(st, sc->name, &c);
	return !strcmp(c.verdict, "wrong") || !strcmp(c.verdict, "error");
}

/* the rows and the scenarios, one JSON line each (what the host's report names) */
static void atlas_list(void)
{
	for (size_t i = 0; i < n_strategies; i++) {
		printf("{\"row\": ");
		json_str(strategies[i].name);
		printf(", \"api\": ");
		json_str(strategies[i].api);
		printf(", \"eager\": %s, \"driver\": %s}\n",
		       strategies[i].eager ? "true" : "false",
		       driver_row(&strategies[i]) ? "true" : "false");
	}
	for (size_t s = 0; s < sizeof(scenarios) / sizeof(scenarios[0]); s++) {
		printf("{\"scenario\": ");
		json_str(scenarios[s].name);
		printf(", \"what\": ");
		json_str(scenarios[s].what);
		printf("}\n");
	}
}

/* barmap-check race: the atlas's race cells of the strategies asked for */
int cmd_race(void)
{
	bool host = opt.remover && !strcmp(opt.remover, "host");

	opt.scenarios = host ? "race-host" : "race-sysfs";
	if (!strcmp(opt.strategy, "all"))
		opt.strategy = "bar";
	return cmd_atlas();
}

int cmd_atlas(void)
{
	bool all_rows = !strcmp(opt.strategy, "all");
	bool all_sc = !strcmp(opt.scenarios, "all");
	int errors = 0, fd;

	if (!strcmp(opt.scenarios, "list")) {
		atlas_list();
		return 0;
	}
	/* a cell's orphans (a fork whose parent exited) come back here to be reaped */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	fd = open(opt.dev, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || pci_dir_of(fd, atlas_pci_dir, sizeof(atlas_pci_dir))) {
		fprintf(stderr, "barmap-check atlas: %s: %s\n", opt.dev, strerror(errno));
		if (fd >= 0)
			close(fd);
		return 2;
	}
	close(fd);
	if (!all_sc) {
		char buf[512], *save = NULL, *name;

		snprintf(buf, sizeof(buf), "%s", opt.scenarios);
		for (name = strtok_r(buf, ",", &save); name;
		     name = strtok_r(NULL, ",", &save)) {
			size_t s;

			for (s = 0; s < sizeof(scenarios) / sizeof(scenarios[0]); s++)
				if (!strcmp(scenarios[s].name, name))
					break;
			if (s == sizeof(scenarios) / sizeof(scenarios[0])) {
				fprintf(stderr, "barmap-check: unknown scenario '%s'\n", name);
				return 2;
			}
		}
	}
	/* scenario by scenario: the destructive ones (removal, rmmod) come last */
	for (size_t s = 0; s < sizeof(scenarios) / sizeof(scenarios[0]); s++) {
		if (!all_sc && !list_has(opt.scenarios, scenarios[s].name))
			continue;
		for (size_t i = 0; i < n_strategies; i++) {
			if (!all_rows && !list_has(opt.strategy, strategies[i].name))
				continue;
			for (double end = now() + 20; !resolve_dev() && now() < end;)
				usleep(10000);	/* a removal before may still be coming back */
			errors += run_cell(&strategies[i], &scenarios[s]);
		}
	}
	return errors ? 1 : 0;
}
