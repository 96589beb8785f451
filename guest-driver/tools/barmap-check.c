// SPDX-License-Identifier: GPL-2.0-only
/*
 * barmap-check: exercise /dev/barmapN from inside the guest.
 *
 *   barmap-check [check] [--dev D] [--strategy bar|dma|reserved|all]
 *                [--size N] [--pattern P] [--width W] [--sizes LIST]
 *                [--cache uc|wc] [--seed S] [--json]
 *   barmap-check info | probe-refusals | hostile | cross | bench | unplug
 *   barmap-check --random-ops N [--seed S]
 *
 * Every result is one line of key=value pairs (or one JSON object with
 * --json); the exit status is 0 iff every requested check passed.
 * Build: gcc -static -O2 -I../../include -o barmap-check barmap-check.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "barmap_regs.h"
#include "barmap_uapi.h"

#define MAX_SHOWN 4

static struct {
	const char *dev;
	const char *strategy;
	uint64_t size;		/* 0: whole object */
	const char *patterns;
	const char *widths;
	const char *sizes;
	const char *cache;
	uint64_t seed;
	bool seed_given;
	bool json;
	long random_ops;
	int verbose;
} opt = {
	.dev = "/dev/barmap0",
	.strategy = "all",
	.patterns = "offset",
	.widths = "32",
	.cache = "uc",
};

static long page_size;
static int failures;

/* ---- output: key=value lines or a JSON array of objects ---- */

static bool rec_open, json_any;
static char rec_note[512];

static void out_begin(void)
{
	if (opt.json)
		printf("[\n");
}

static void out_end(void)
{
	if (opt.json)
		printf("%s]\n", json_any ? "\n" : "");
}

static void rec_begin(void)
{
	rec_open = false;
	rec_note[0] = 0;
	if (opt.json) {
		printf("%s  {", json_any ? ",\n" : "");
		json_any = true;
	}
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

static void rec_kv(const char *k, const char *v, bool quote)
{
	if (opt.json) {
		printf("%s", rec_open ? ", " : "");
		json_str(k);
		printf(": ");
		if (quote)
			json_str(v);
		else
			printf("%s", v);
	} else {
		printf("%s%s=%s", rec_open ? " " : "", k, v);
	}
	rec_open = true;
}

static void rec_s(const char *k, const char *v)
{
	rec_kv(k, v, true);
}

static void rec_u(const char *k, uint64_t v)
{
	char b[32];

	snprintf(b, sizeof(b), "%" PRIu64, v);
	rec_kv(k, b, false);
}

static void rec_x(const char *k, uint64_t v)
{
	char b[32];

	snprintf(b, sizeof(b), "0x%" PRIx64, v);
	rec_kv(k, b, true);
}

static void rec_f(const char *k, double v)
{
	char b[32];

	snprintf(b, sizeof(b), "%.1f", v);
	rec_kv(k, b, false);
}

static void rec_notef(const char *fmt, ...)
{
	va_list ap;
	size_t n = strlen(rec_note);

	if (n && n < sizeof(rec_note) - 2) {
		strcat(rec_note, "; ");
		n += 2;
	}
	va_start(ap, fmt);
	vsnprintf(rec_note + n, sizeof(rec_note) - n, fmt, ap);
	va_end(ap);
}

/* ends a record; in text mode a bare word (ok/FAIL) may close the line */
static void rec_end(const char *word)
{
	if (opt.json) {
		if (rec_note[0])
			rec_s("note", rec_note);
		if (word)
			rec_s("result", word);
		printf("}");
	} else {
		if (word)
			printf(" %s", word);
		printf("\n");
		if (rec_note[0])
			printf("  note: %s\n", rec_note);
	}
	fflush(stdout);
}

/* ---- small helpers ---- */

static const char *errname(int e)
{
	switch (e) {
	case 0: return "0";
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case EIO: return "EIO";
	case ENXIO: return "ENXIO";
	case EBADF: return "EBADF";
	case EAGAIN: return "EAGAIN";
	case ENOMEM: return "ENOMEM";
	case EACCES: return "EACCES";
	case EFAULT: return "EFAULT";
	case EBUSY: return "EBUSY";
	case ENODEV: return "ENODEV";
	case EINVAL: return "EINVAL";
	case ENOTTY: return "ENOTTY";
	case ENOSPC: return "ENOSPC";
	case ENOSYS: return "ENOSYS";
	case EOVERFLOW: return "EOVERFLOW";
	case ETIMEDOUT: return "ETIMEDOUT";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	default: return "E?";
	}
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t parse_size(const char *s)
{
	char *end;
	uint64_t v = strtoull(s, &end, 0);

	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	}
	if (*end) {
		fprintf(stderr, "bad size '%s'\n", s);
		exit(2);
	}
	return v;
}

static uint64_t rng_state;

static uint64_t rng(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

static uint64_t rng_below(uint64_t n)
{
	return n ? rng() % n : 0;
}

static bool list_has(const char *list, const char *word)
{
	size_t n = strlen(word);
	const char *p = list;

	if (!strcmp(list, "all"))
		return true;
	while ((p = strstr(p, word))) {
		if ((p == list || p[-1] == ',') && (p[n] == 0 || p[n] == ','))
			return true;
		p += n;
	}
	return false;
}

/* ---- the device ---- */

static int dev_open(int flags)
{
	int fd = open(opt.dev, flags | O_CLOEXEC);

	if (fd < 0) {
		fprintf(stderr, "barmap-check: open %s: %s\n", opt.dev,
			strerror(errno));
		exit(2);
	}
	return fd;
}

static int get_info(int fd, struct barmap_info *info)
{
	memset(info, 0, sizeof(*info));
	return ioctl(fd, BARMAP_IOC_INFO, info) ? -errno : 0;
}

static int buf_alloc(int fd, uint64_t size, uint32_t *id)
{
	struct barmap_alloc a = { .size = size };

	if (ioctl(fd, BARMAP_IOC_ALLOC, &a))
		return -errno;
	*id = a.id;
	return 0;
}

static int buf_free(int fd, uint32_t id)
{
	return ioctl(fd, BARMAP_IOC_FREE, &id) ? -errno : 0;
}

static int do_dma(int fd, uint32_t id, uint64_t bar_off, uint64_t buf_off,
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

static int set_cache(int fd, uint32_t mode)
{
	return ioctl(fd, BARMAP_IOC_SET_CACHE, &mode) ? -errno : 0;
}

static void *map_id(int fd, uint32_t id, size_t len, int prot, int flags)
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

static void guard_install(void)
{
	struct sigaction sa = { .sa_handler = guard_handler };

	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_NODEFER;
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
}

/* 0 or the signal number */
static int guarded_rw32(volatile uint32_t *p, uint32_t *val, bool write)
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
static void guarded_read_outcome(volatile uint32_t *p, char *out, size_t n)
{
	uint32_t r = 0;
	int sig = guarded_rw32(p, &r, false);

	if (!sig)
		snprintf(out, n, "read=%#x", r);
	else
		snprintf(out, n, "signal=%s",
			 sig == SIGBUS ? "SIGBUS" : strsignal(sig));
}

/* ---- patterns and access widths ---- */

static const char *const all_patterns[] = { "offset", "walk", "55aa",
					    "random" };
static const int all_widths[] = { 8, 16, 32, 64, 0 };	/* 0: memcpy */

static void fill_pattern(uint8_t *p, size_t n, const char *pat, uint64_t seed)
{
	size_t i;
	uint32_t w;

	if (!strcmp(pat, "random"))
		rng_state = seed | 1;
	for (i = 0; i < n; i += 4) {
		if (!strcmp(pat, "offset"))
			w = (uint32_t)i ^ (uint32_t)seed;
		else if (!strcmp(pat, "walk"))
			w = 1u << ((i / 4 + seed) % 32);
		else if (!strcmp(pat, "55aa"))
			w = (i / 4) & 1 ? 0xaa55aa55u : 0x55aa55aau;
		else
			w = (uint32_t)rng();
		memcpy(p + i, &w, n - i < 4 ? n - i : 4);
	}
}

static void write_width(volatile void *dst, const uint8_t *src, size_t n,
			int width)
{
	volatile uint8_t *d = dst;
	size_t i = 0, w = width / 8;

	if (!width) {
		memcpy((void *)d, src, n);
		__sync_synchronize();
		return;
	}
	for (; i + w <= n; i += w) {
		switch (width) {
		case 16: { uint16_t v; memcpy(&v, src + i, 2);
			*(volatile uint16_t *)(d + i) = v; break; }
		case 32: { uint32_t v; memcpy(&v, src + i, 4);
			*(volatile uint32_t *)(d + i) = v; break; }
		case 64: { uint64_t v; memcpy(&v, src + i, 8);
			*(volatile uint64_t *)(d + i) = v; break; }
		default: d[i] = src[i]; break;
		}
	}
	for (; i < n; i++)
		d[i] = src[i];
	__sync_synchronize();
}

static void read_width(uint8_t *dst, const volatile void *src, size_t n,
		       int width)
{
	const volatile uint8_t *s = src;
	size_t i = 0, w = width / 8;

	if (!width) {
		memcpy(dst, (const void *)s, n);
		return;
	}
	for (; i + w <= n; i += w) {
		switch (width) {
		case 16: { uint16_t v = *(const volatile uint16_t *)(s + i);
			memcpy(dst + i, &v, 2); break; }
		case 32: { uint32_t v = *(const volatile uint32_t *)(s + i);
			memcpy(dst + i, &v, 4); break; }
		case 64: { uint64_t v = *(const volatile uint64_t *)(s + i);
			memcpy(dst + i, &v, 8); break; }
		default: dst[i] = s[i]; break;
		}
	}
	for (; i < n; i++)
		dst[i] = s[i];
}

/*
 * Compare, print the first few mismatches, and explain uniform results:
 * all-0xff is what a read that nothing answers returns on real PCI (and
 * what the seed question saw), all-0x00 is QEMU's unassigned memory.
 */
static uint64_t compare(const char *what, const uint8_t *exp,
			const uint8_t *got, size_t n)
{
	uint64_t bad = 0;
	size_t i, ff = 0, zero = 0;

	if (!memcmp(exp, got, n))
		return 0;
	for (i = 0; i < n; i++) {
		ff += got[i] == 0xff;
		zero += got[i] == 0;
		if (exp[i] == got[i])
			continue;
		if (bad++ < MAX_SHOWN && !opt.json)
			printf("  mismatch %s off=0x%zx expected=0x%02x got=0x%02x\n",
			       what, i, exp[i], got[i]);
	}
	if (ff == n)
		rec_notef("all reads returned 0xff: nothing decodes this address (dead link?)");
	else if (zero == n)
		rec_notef("all reads returned 0x00: not decoded (QEMU unassigned) or writes dropped");
	return bad;
}

/* ---- the check mode ---- */

struct object {
	const char *name;
	uint32_t id;
	uint64_t size;		/* whole object */
	bool allocated;
};

static int object_get(int fd, const struct barmap_info *info,
		      const char *strategy, uint64_t want, struct object *ob)
{
	int ret;

	memset(ob, 0, sizeof(*ob));
	ob->name = strategy;
	if (!strcmp(strategy, "bar")) {
		ob->id = BARMAP_MMAP_ID_BAR;
		ob->size = info->bar_size;
	} else if (!strcmp(strategy, "reserved")) {
		ob->id = BARMAP_MMAP_ID_RESERVED;
		ob->size = info->reserved_size;
		if (!ob->size)
			return -ENODEV;
	} else {
		ob->size = want ? want : BARMAP_BUF_SIZE_MAX;
		if (ob->size > BARMAP_BUF_SIZE_MAX)
			ob->size = BARMAP_BUF_SIZE_MAX;
		ret = buf_alloc(fd, ob->size, &ob->id);
		if (ret)
			return ret;
		ob->size = (ob->size + page_size - 1) & ~(uint64_t)(page_size - 1);
		ob->allocated = true;
	}
	return 0;
}

static void object_put(int fd, struct object *ob)
{
	if (ob->allocated)
		buf_free(fd, ob->id);
}

static const char *width_name(int w)
{
	static char b[8];

	if (!w)
		return "memcpy";
	snprintf(b, sizeof(b), "%d", w);
	return b;
}

/* one pattern/width/size pass; returns mismatching bytes or -errno */
static int64_t check_pass(int fd, const struct object *ob, const char *pat,
			  int width, uint64_t n, uint64_t seed)
{
	uint8_t *exp = malloc(n), *got = malloc(n);
	void *p;
	int64_t bad;

	if (!exp || !got) {
		fprintf(stderr, "out of memory\n");
		exit(2);
	}
	p = map_id(fd, ob->id, n, PROT_READ | PROT_WRITE, MAP_SHARED);
	if (p == MAP_FAILED) {
		bad = -errno;
		goto out;
	}
	fill_pattern(exp, n, pat, seed);
	write_width(p, exp, n, width);
	read_width(got, p, n, width);
	bad = compare(ob->name, exp, got, n);
	munmap(p, n);
out:
	free(exp);
	free(got);
	return bad;
}

static void size_list(const struct object *ob, uint64_t *v, int *nv)
{
	static const char *const names[] = { "1", "1024", "1025", "page",
					     "whole" };
	uint64_t vals[] = { 1, 1024, 1025, page_size, ob->size };
	int i;

	*nv = 0;
	if (!opt.sizes) {
		v[(*nv)++] = opt.size && opt.size < ob->size ? opt.size : ob->size;
		return;
	}
	for (i = 0; i < 5; i++)
		if (list_has(opt.sizes, names[i]) && vals[i] <= ob->size)
			v[(*nv)++] = vals[i];
}

static bool check_strategy(int fd, const struct barmap_info *info,
			   const char *strategy, bool explicit)
{
	struct object ob;
	uint64_t sizes[5], total_bad = 0, total_bytes = 0;
	unsigned int pi, wi;
	int ns, si, ret, passes = 0;
	bool ok = true;

	ret = object_get(fd, info, strategy, opt.size, &ob);
	if (ret) {
		rec_begin();
		rec_s("strategy", strategy);
		rec_s("error", errname(-ret));
		rec_s("verdict", "SKIP");
		if (ret == -ENODEV)
			rec_notef("no reserved region: load the module with reserved_base=/reserved_size= and boot with memmap=SIZE$ADDR");
		rec_end(NULL);
		return !explicit;
	}
	size_list(&ob, sizes, &ns);
	for (pi = 0; pi < 4; pi++) {
		if (!list_has(opt.patterns, all_patterns[pi]))
			continue;
		for (wi = 0; wi < 5; wi++) {
			if (!list_has(opt.widths, width_name(all_widths[wi])))
				continue;
			for (si = 0; si < ns; si++) {
				uint64_t seed = opt.seed + passes++;
				int64_t bad;

				rec_begin();
				bad = check_pass(fd, &ob, all_patterns[pi],
						 all_widths[wi], sizes[si],
						 seed);
				rec_s("strategy", strategy);
				rec_u("bytes", sizes[si]);
				rec_s("pattern", all_patterns[pi]);
				rec_s("width", width_name(all_widths[wi]));
				rec_x("seed", seed);
				if (bad < 0) {
					rec_s("error", errname(-bad));
					ok = false;
				} else {
					rec_u("mismatches", bad);
					total_bad += bad;
					ok &= !bad;
				}
				total_bytes += sizes[si];
				rec_s("verdict", bad ? "FAIL" : "PASS");
				rec_end(NULL);
			}
		}
	}
	if (passes > 1) {
		rec_begin();
		rec_s("strategy", strategy);
		rec_s("summary", "1");
		rec_u("passes", passes);
		rec_u("bytes", total_bytes);
		rec_u("mismatches", total_bad);
		rec_s("verdict", ok ? "PASS" : "FAIL");
		rec_end(NULL);
	}
	object_put(fd, &ob);
	return ok;
}

static uint32_t cache_mode_opt(void)
{
	return strcmp(opt.cache, "wc") ? BARMAP_CACHE_UC : BARMAP_CACHE_WC;
}

static int cmd_check(void)
{
	struct barmap_info info;
	int fd = dev_open(O_RDWR), ret;
	bool all = !strcmp(opt.strategy, "all");
	uint32_t mode = cache_mode_opt();

	ret = get_info(fd, &info);
	if (ret) {
		fprintf(stderr, "INFO: %s\n", strerror(-ret));
		return 2;
	}
	if (set_cache(fd, mode))
		failures++;
	if (all || list_has(opt.strategy, "bar"))
		failures += !check_strategy(fd, &info, "bar", !all);
	if (all || list_has(opt.strategy, "dma"))
		failures += !check_strategy(fd, &info, "dma", !all);
	if (all || list_has(opt.strategy, "reserved"))
		failures += !check_strategy(fd, &info, "reserved", !all);
	close(fd);
	return failures ? 1 : 0;
}

static int cmd_info(void)
{
	struct barmap_info info;
	int fd = dev_open(O_RDWR), ret = get_info(fd, &info);

	rec_begin();
	rec_s("dev", opt.dev);
	if (ret) {
		rec_s("error", errname(-ret));
		rec_end(NULL);
		return 1;
	}
	rec_u("minor", info.minor);
	rec_x("bar_phys", info.bar_phys);
	rec_u("bar_size", info.bar_size);
	rec_x("reserved_phys", info.reserved_phys);
	rec_u("reserved_size", info.reserved_size);
	rec_x("caps", info.caps);
	rec_x("version", info.version);
	rec_s("cache", info.cache_mode == BARMAP_CACHE_WC ? "wc" : "uc");
	rec_end(NULL);
	close(fd);
	return 0;
}

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

static void c_id_gap(struct ctx *c, char *out, size_t n)
{
	out_mmap(out, n, map_id(c->fd, BARMAP_MMAP_ID_RESERVED + 1, page_size,
				PROT_READ | PROT_WRITE, MAP_SHARED), page_size);
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
		       uint32_t flags)
{
	struct barmap_alloc a = { .size = size, .flags = flags };
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

static void c_alloc_flags(struct ctx *c, char *out, size_t n)
{
	alloc_case(c, out, n, page_size, 1);
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
	{ "alloc-flags", "errno=EINVAL", c_alloc_flags, true },
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
	{ "madvise-dontneed", "errno=EINVAL", c_madv_dontneed, false },
	{ "fork-write-bar", "shared", c_fork_bar, false },
	{ "fork-write-buffer", "shared", c_fork_buf, false },
	{ "close-before-munmap", "ok", c_close_first, false },
	{ "access-after-munmap", "signal=SIGSEGV", c_after_munmap, false },
	{ "read-syscall", "errno=EINVAL", c_read_syscall, false },
	{ "write-syscall", "errno=EINVAL", c_write_syscall, false },
};

static int cmd_matrix(bool refusals_only)
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
		if (!strncmp(got, "errno=", 6) && !opt.json) {
			rec_s("errno", got + 6);
		} else if (!strncmp(got, "errno=", 6)) {
			rec_s("errno", got + 6);
		} else {
			rec_s("outcome", got);
		}
		if (!ok)
			rec_s("expected", expect);
		rec_end(ok ? "ok" : "FAIL");
	}
	close(c.fd);
	if (!opt.json)
		printf("%d passed, %d failed\n", ran - bad, bad);
	return bad ? 1 : 0;
}

/* ---- cross-path: CPU through one mapping, DMA, CPU through the other ---- */

static bool cross_one(int fd, const struct barmap_info *info, bool to_dev)
{
	uint64_t len = info->bar_size < BARMAP_BUF_SIZE_MAX ? info->bar_size :
							       BARMAP_BUF_SIZE_MAX;
	/* BAR side at the top of BAR2, to cover its last byte */
	uint64_t bar_off = info->bar_size - len, off, chunk, bad = 0;
	uint8_t *exp = malloc(len), *got = malloc(len), *bar, *buf;
	uint32_t id = 0, status = 0;
	int ret, dmas = 0;
	double t;

	rec_begin();
	rec_s("cross", to_dev ? "buf-to-bar" : "bar-to-buf");
	rec_u("bytes", len);
	ret = buf_alloc(fd, len, &id);
	if (ret) {
		rec_s("error", errname(-ret));
		rec_s("verdict", "FAIL");
		rec_end(NULL);
		return false;
	}
	bar = map_id(fd, BARMAP_MMAP_ID_BAR, info->bar_size,
		     PROT_READ | PROT_WRITE, MAP_SHARED);
	buf = map_id(fd, id, len, PROT_READ | PROT_WRITE, MAP_SHARED);
	if (bar == MAP_FAILED || buf == MAP_FAILED) {
		rec_s("error", errname(errno));
		ret = -1;
		goto out;
	}
	fill_pattern(exp, len, "offset", opt.seed ^ (to_dev ? 0x55 : 0xaa));
	memset(got, 0xa5, len);
	/* source gets the pattern, destination a different fill */
	write_width(to_dev ? buf : bar + bar_off, exp, len, 32);
	write_width(to_dev ? bar + bar_off : buf, got, len, 32);
	t = now();
	for (off = 0; off < len; off += chunk) {
		chunk = len - off < BARMAP_DMA_MAX_LEN ? len - off :
							 BARMAP_DMA_MAX_LEN;
		ret = do_dma(fd, id, bar_off + off, off, chunk,
			     to_dev ? BARMAP_DMA_TO_DEV : BARMAP_DMA_FROM_DEV,
			     &status);
		dmas++;
		if (ret)
			break;
	}
	t = now() - t;
	rec_u("dmas", dmas);
	rec_x("dma_status", status);
	if (ret) {
		rec_s("error", errname(-ret));
		if (ret == -ETIMEDOUT)
			rec_notef("no completion interrupt (interrupt lost?)");
		if (ret == -EIO)
			rec_notef("device reported DMA error %u",
				  (status & BARMAP_DMA_STATUS_ERR_MASK) >>
				  BARMAP_DMA_STATUS_ERR_SHIFT);
		goto out;
	}
	read_width(got, to_dev ? bar + bar_off : buf, len, 32);
	bad = compare(to_dev ? "bar" : "buf", exp, got, len);
	rec_u("mismatches", bad);
	rec_f("dma_MBps", len / t / 1e6);
out:
	rec_s("verdict", !ret && !bad ? "PASS" : "FAIL");
	rec_end(NULL);
	if (bar != MAP_FAILED)
		munmap(bar, info->bar_size);
	if (buf != MAP_FAILED)
		munmap(buf, len);
	buf_free(fd, id);
	free(exp);
	free(got);
	return !ret && !bad;
}

static int cmd_cross(void)
{
	struct barmap_info info;
	int fd = dev_open(O_RDWR), bad = 0;

	if (get_info(fd, &info))
		return 2;
	bad += !cross_one(fd, &info, false);
	bad += !cross_one(fd, &info, true);
	close(fd);
	return bad ? 1 : 0;
}

/* ---- bandwidth ---- */

static double bench_loop(void *dst, const void *src, size_t n)
{
	double t0 = now(), t;
	long it = 0;

	do {
		memcpy(dst, src, n);
		__sync_synchronize();
		it++;
		t = now() - t0;
	} while (t < 0.25 && it < 1000);
	return (double)n * it / t / 1e6;
}

static void bench_one(const char *name, void *p, size_t n, bool table)
{
	uint8_t *ram = malloc(n);
	double w, r;

	memset(ram, 0x5a, n);
	w = bench_loop(p, ram, n);
	r = bench_loop(ram, p, n);
	if (table && !opt.json) {
		printf("%-12s %10zu %12.1f %12.1f\n", name, n, w, r);
	} else {
		rec_begin();
		rec_s("bench", name);
		rec_u("bytes", n);
		rec_f("write_MBps", w);
		rec_f("read_MBps", r);
		rec_end(NULL);
	}
	free(ram);
}

static int cmd_bench(void)
{
	struct barmap_info info;
	int fd = dev_open(O_RDWR), mode;
	size_t n;
	uint32_t id = 0;
	void *p;

	if (get_info(fd, &info))
		return 2;
	n = opt.size ? opt.size : BARMAP_BUF_SIZE_MAX;
	if (n > BARMAP_BUF_SIZE_MAX)
		n = BARMAP_BUF_SIZE_MAX;
	if (n > info.bar_size)
		n = info.bar_size;
	if (!opt.json)
		printf("%-12s %10s %12s %12s\n", "strategy", "bytes",
		       "write_MB/s", "read_MB/s");
	p = malloc(n);
	bench_one("malloc", p, n, true);
	free(p);
	for (mode = BARMAP_CACHE_UC; mode <= BARMAP_CACHE_WC; mode++) {
		set_cache(fd, mode);
		p = map_id(fd, BARMAP_MMAP_ID_BAR, n, PROT_READ | PROT_WRITE,
			   MAP_SHARED);
		if (p != MAP_FAILED) {
			bench_one(mode ? "bar-wc" : "bar-uc", p, n, true);
			munmap(p, n);
		}
		if (info.reserved_size >= n) {
			p = map_id(fd, BARMAP_MMAP_ID_RESERVED, n,
				   PROT_READ | PROT_WRITE, MAP_SHARED);
			if (p != MAP_FAILED) {
				bench_one(mode ? "reserved-wc" : "reserved-uc",
					  p, n, true);
				munmap(p, n);
			}
		}
	}
	set_cache(fd, BARMAP_CACHE_UC);
	if (!buf_alloc(fd, n, &id)) {
		p = map_id(fd, id, n, PROT_READ | PROT_WRITE, MAP_SHARED);
		if (p != MAP_FAILED) {
			bench_one("dma-coherent", p, n, true);
			munmap(p, n);
		}
		buf_free(fd, id);
	}
	close(fd);
	return 0;
}

/* ---- seeded random ioctl/mmap sequence against a model ---- */

struct rmap {
	uint8_t *p;
	size_t len;
	uint32_t id;
	bool writable;
};

#define RMAPS 24

static struct {
	uint64_t size[BARMAP_BUF_MAX];	/* 0: slot free */
	int maps[BARMAP_BUF_MAX];
	struct rmap m[RMAPS];
	int nm;
	bool reserved_is_memory;	/* else touches only check for signals */
	struct barmap_info info;
	long bad;
	long counts[12];
} R;

static const char *const rop_names[] = {
	"info", "alloc", "free", "mmap", "munmap", "dma", "set_cache",
	"bad_ioctl", "touch", "mremap", "ioctl_null", "mmap_private",
};

static void rop_result(long i, int op, int got, int exp1, int exp2,
		       const char *what)
{
	R.counts[op]++;
	if (got == exp1 || got == exp2)
		return;
	if (R.bad++ < 10)
		printf("  op#%ld %s %s: got %s expected %s%s%s\n", i,
		       rop_names[op], what, errname(-got), errname(-exp1),
		       exp2 != exp1 ? " or " : "",
		       exp2 != exp1 ? errname(-exp2) : "");
}

static int slot_of(uint32_t id)
{
	if (id < BARMAP_BUF_ID_FIRST || id >= BARMAP_BUF_ID_FIRST + BARMAP_BUF_MAX)
		return -1;
	return id - BARMAP_BUF_ID_FIRST;
}

static uint32_t pick_id(void)
{
	int r = rng_below(10), s;

	if (r < 6) {		/* an allocated one if any */
		for (s = rng_below(BARMAP_BUF_MAX), r = 0; r < BARMAP_BUF_MAX;
		     r++, s = (s + 1) % BARMAP_BUF_MAX)
			if (R.size[s])
				return BARMAP_BUF_ID_FIRST + s;
	}
	if (r < 8)
		return BARMAP_BUF_ID_FIRST + rng_below(BARMAP_BUF_MAX);
	return rng_below(2) ? rng_below(BARMAP_BUF_ID_FIRST + BARMAP_BUF_MAX + 8) :
			      (uint32_t)rng();
}

static void rop_mmap(int fd, long i, bool private)
{
	uint64_t npages, objsize = 0;
	uint32_t id;
	int r = rng_below(10), exp, s, got;
	bool valid;
	size_t len;
	void *p;

	if (r < 3)
		id = BARMAP_MMAP_ID_BAR;
	else if (r < 4)
		id = BARMAP_MMAP_ID_RESERVED;
	else
		id = pick_id() & 0xffff;
	s = slot_of(id);
	if (id == BARMAP_MMAP_ID_BAR)
		objsize = R.info.bar_size;
	else if (id == BARMAP_MMAP_ID_RESERVED)
		objsize = R.info.reserved_size;
	else if (s >= 0)
		objsize = R.size[s];
	npages = 1 + rng_below(16);
	if (objsize && rng_below(8) == 0)
		npages = objsize / page_size + 1;	/* past the end */
	if (objsize && npages * page_size > objsize && rng_below(2))
		npages = objsize / page_size;
	len = npages * page_size;
	valid = objsize && len <= objsize;
	if (private)
		exp = -EINVAL;
	else if (id == BARMAP_MMAP_ID_RESERVED && !objsize)
		exp = -ENODEV;
	else
		exp = valid ? 0 : -EINVAL;
	if (R.nm == RMAPS && !exp)
		return;
	p = map_id(fd, id, len, PROT_READ | PROT_WRITE,
		   private ? MAP_PRIVATE : MAP_SHARED);
	got = p == MAP_FAILED ? -errno : 0;
	rop_result(i, private ? 11 : 3, got, exp, exp, "");
	if (got)
		return;
	if (exp) {		/* unexpectedly mapped: drop it */
		munmap(p, len);
		return;
	}
	R.m[R.nm++] = (struct rmap){ p, len, id, true };
	if (s >= 0 && id >= BARMAP_BUF_ID_FIRST)
		R.maps[s]++;
}

static void rop_munmap(long i)
{
	int k = rng_below(R.nm), s;

	if (!R.nm)
		return;
	rop_result(i, 4, munmap(R.m[k].p, R.m[k].len) ? -errno : 0, 0, 0, "");
	s = slot_of(R.m[k].id);
	if (s >= 0 && R.m[k].id >= BARMAP_BUF_ID_FIRST)
		R.maps[s]--;
	R.m[k] = R.m[--R.nm];
}

static void rop_touch(long i)
{
	struct rmap *m;
	uint32_t v = (uint32_t)rng(), r = 0;
	size_t off;
	int sig;

	if (!R.nm)
		return;
	m = &R.m[rng_below(R.nm)];
	off = rng_below(m->len / 4) * 4;
	sig = guarded_rw32((uint32_t *)(m->p + off), &v, true);
	if (!sig)
		sig = guarded_rw32((uint32_t *)(m->p + off), &r, false);
	R.counts[8]++;
	if (m->id == BARMAP_MMAP_ID_RESERVED && !R.reserved_is_memory)
		r = v;
	if (sig || r != v) {
		if (R.bad++ < 10)
			printf("  op#%ld touch id=%u off=%#zx: signal=%d wrote=%#x read=%#x\n",
			       i, m->id, off, sig, v, r);
	}
}

static void rop_alloc(int fd, long i)
{
	struct barmap_alloc a = { 0 };
	int r = rng_below(20), s, used = 0, exp, got;

	if (r == 0)
		a.size = 0;
	else if (r == 1)
		a.size = BARMAP_BUF_SIZE_MAX + 1 + rng_below(1 << 20);
	else if (r == 2)
		a.size = rng();
	else if (r == 3)
		a.size = BARMAP_BUF_SIZE_MAX;
	else
		a.size = 1 + rng_below(16 * page_size);
	a.flags = rng_below(20) == 0 ? (uint32_t)rng() | 1 : 0;
	for (s = 0; s < BARMAP_BUF_MAX; s++)
		used += !!R.size[s];
	if (a.flags || !a.size || a.size > BARMAP_BUF_SIZE_MAX)
		exp = -EINVAL;
	else if (used == BARMAP_BUF_MAX)
		exp = -ENOSPC;
	else
		exp = 0;
	got = ioctl(fd, BARMAP_IOC_ALLOC, &a) ? -errno : 0;
	rop_result(i, 1, got, exp, exp ? exp : -ENOMEM, "");
	if (!got) {
		s = slot_of(a.id);
		if (s < 0 || R.size[s]) {
			if (R.bad++ < 10)
				printf("  op#%ld alloc: bad id %u\n", i, a.id);
			return;
		}
		R.size[s] = (a.size + page_size - 1) & ~(uint64_t)(page_size - 1);
	}
}

static void rop_free(int fd, long i)
{
	uint32_t id = pick_id();
	int s = slot_of(id), exp, got;

	if (s < 0 || !R.size[s])
		exp = -EINVAL;
	else if (R.maps[s])
		exp = -EBUSY;
	else
		exp = 0;
	got = buf_free(fd, id);
	rop_result(i, 2, got, exp, exp, "");
	if (!got && s >= 0)
		R.size[s] = 0;
}

static void rop_dma(int fd, long i)
{
	struct barmap_dma d = { 0 };
	uint64_t bsize;
	int s, exp, got;

	d.id = pick_id();
	s = slot_of(d.id);
	bsize = s >= 0 ? R.size[s] : 0;
	d.len = rng_below(8) ? 4 * (1 + rng_below(page_size / 4)) :
			       rng_below(BARMAP_DMA_MAX_LEN + 2);
	d.buf_off = bsize && rng_below(4) ? rng_below(bsize) : rng();
	if (rng_below(2) && bsize > d.len)
		d.buf_off = rng_below(bsize - d.len + 1);
	d.bar_off = rng_below(4) ? rng_below(R.info.bar_size - d.len + 1) :
				   R.info.bar_size - rng_below(2 * page_size);
	d.dir = rng_below(16) ? rng_below(2) : 2 + rng_below(5);
	d.timeout_ms = rng_below(16) ? 0 : BARMAP_DMA_MAX_LEN;
	if (d.dir > 1 || !d.len || d.len > BARMAP_DMA_MAX_LEN ||
	    d.timeout_ms > 60000 ||
	    d.bar_off > R.info.bar_size || d.len > R.info.bar_size - d.bar_off ||
	    !bsize || d.buf_off > bsize || d.len > bsize - d.buf_off)
		exp = -EINVAL;
	else
		exp = 0;
	got = ioctl(fd, BARMAP_IOC_DMA, &d) ? -errno : 0;
	rop_result(i, 5, got, exp, exp, "");
}

static void rop_bad_ioctl(int fd, long i)
{
	unsigned int cmd;

	do {
		cmd = _IOC(rng_below(4), BARMAP_IOC_MAGIC, rng_below(256),
			   rng_below(64));
	} while (cmd == BARMAP_IOC_INFO || cmd == BARMAP_IOC_ALLOC ||
		 cmd == BARMAP_IOC_FREE || cmd == BARMAP_IOC_DMA ||
		 cmd == BARMAP_IOC_SET_CACHE);
	rop_result(i, 7, ioctl(fd, cmd, NULL) ? -errno : 0, -ENOTTY, -ENOTTY,
		   "");
}

static void rop_null(int fd, long i)
{
	static const unsigned long cmds[] = {
		BARMAP_IOC_INFO, BARMAP_IOC_ALLOC, BARMAP_IOC_FREE,
		BARMAP_IOC_DMA, BARMAP_IOC_SET_CACHE,
	};

	rop_result(i, 10, ioctl(fd, cmds[rng_below(5)], rng_below(2) ? NULL :
				(void *)16) ? -errno : 0, -EFAULT, -EFAULT, "");
}

static void rop_mremap(long i)
{
	struct rmap *m;
	void *q;

	if (!R.nm)
		return;
	m = &R.m[rng_below(R.nm)];
	q = mremap(m->p, m->len, m->len + page_size, MREMAP_MAYMOVE);
	if (q != MAP_FAILED) {
		m->p = q;
		m->len += page_size;
	}
	rop_result(i, 9, q == MAP_FAILED ? -errno : 0, -EFAULT, -EFAULT, "");
}

static int cmd_random(void)
{
	int fd = dev_open(O_RDWR), k;
	uint32_t v;
	long i;
	double t = now();

	if (get_info(fd, &R.info))
		return 2;
	guard_install();
	if (R.info.reserved_size) {
		volatile uint32_t *p = map_id(fd, BARMAP_MMAP_ID_RESERVED,
					      page_size, PROT_READ | PROT_WRITE,
					      MAP_SHARED);

		if (p != MAP_FAILED) {
			p[0] = 0x12345678;
			p[1] = 0xedcba987;
			R.reserved_is_memory = p[0] == 0x12345678 &&
					       p[1] == 0xedcba987;
			munmap((void *)p, page_size);
		}
		if (!R.reserved_is_memory && !opt.json)
			printf("  note: the reserved region does not hold data (no RAM there?): its touches check only for signals\n");
	}
	rng_state = opt.seed | 1;
	for (i = 0; i < opt.random_ops; i++) {
		int op = rng_below(100);
		uint64_t save = rng_state;

		if (op < 5) {
			rop_result(i, 0, get_info(fd, &R.info), 0, 0, "");
		} else if (op < 20) {
			rop_alloc(fd, i);
		} else if (op < 33) {
			rop_free(fd, i);
		} else if (op < 48) {
			rop_mmap(fd, i, false);
		} else if (op < 50) {
			rop_mmap(fd, i, true);
		} else if (op < 62) {
			rop_munmap(i);
		} else if (op < 70) {
			rop_dma(fd, i);
		} else if (op < 75) {
			v = rng_below(4) ? rng_below(2) : (uint32_t)rng();
			rop_result(i, 6, set_cache(fd, v), v > 1 ? -EINVAL : 0,
				   v > 1 ? -EINVAL : 0, "");
		} else if (op < 82) {
			rop_bad_ioctl(fd, i);
		} else if (op < 95) {
			rop_touch(i);
		} else if (op < 97) {
			rop_mremap(i);
		} else {
			rop_null(fd, i);
		}
		(void)save;
	}
	for (k = 0; k < R.nm; k++)
		munmap(R.m[k].p, R.m[k].len);
	/* after everything is unmapped, every buffer must free */
	for (k = 0; k < BARMAP_BUF_MAX; k++)
		if (R.size[k])
			rop_result(i, 2, buf_free(fd, BARMAP_BUF_ID_FIRST + k),
				   0, 0, "final");
	t = now() - t;
	close(fd);
	rec_begin();
	rec_u("random_ops", opt.random_ops);
	rec_x("seed", opt.seed);
	for (k = 0; k < 12; k++)
		rec_u(rop_names[k], R.counts[k]);
	rec_u("unexpected", R.bad);
	rec_f("ops_per_s", opt.random_ops / t);
	rec_s("verdict", R.bad ? "FAIL" : "PASS");
	rec_end(NULL);
	return R.bad ? 1 : 0;
}

/* ---- hot unplug while mapped, then rescan ---- */

static int sysfs_write(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY), ret = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, val, strlen(val)) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

static bool unplug_line(const char *name, const char *got, const char *exp)
{
	bool ok = !strcmp(got, exp);

	rec_begin();
	rec_s("unplug", name);
	rec_s("outcome", got);
	if (!ok)
		rec_s("expected", exp);
	rec_end(ok ? "ok" : "FAIL");
	return ok;
}

static int cmd_unplug(void)
{
	int fd = dev_open(O_RDWR), bad = 0, ret, sig;
	struct barmap_info info;
	struct stat st;
	char path[256], got[64];
	uint32_t id = 0, v = 0xfeedf00d;
	volatile uint32_t *bar, *buf;
	void *p;

	guard_install();
	if (get_info(fd, &info) || fstat(fd, &st))
		return 2;
	ret = buf_alloc(fd, page_size, &id);
	bar = map_id(fd, BARMAP_MMAP_ID_BAR, page_size, PROT_READ | PROT_WRITE,
		     MAP_SHARED);
	buf = map_id(fd, id, page_size, PROT_READ | PROT_WRITE, MAP_SHARED);
	if (ret || bar == MAP_FAILED || buf == MAP_FAILED) {
		fprintf(stderr, "setup failed\n");
		return 2;
	}
	bar[0] = v;
	buf[0] = v;
	snprintf(path, sizeof(path), "/sys/dev/char/%u:%u/device/remove",
		 major(st.st_rdev), minor(st.st_rdev));
	ret = sysfs_write(path, "1");
	snprintf(got, sizeof(got), "%s", ret ? errname(-ret) : "ok");
	bad += !unplug_line("remove", got, "ok");

	guarded_read_outcome(bar, got, sizeof(got));
	bad += !unplug_line("bar-read", got, "signal=SIGBUS");
	guarded_read_outcome(buf, got, sizeof(got));
	bad += !unplug_line("buffer-read", got, "signal=SIGBUS");
	sig = guarded_rw32(buf, &v, true);
	snprintf(got, sizeof(got), sig == SIGBUS ? "signal=SIGBUS" : "sig=%d", sig);
	bad += !unplug_line("buffer-write", got, "signal=SIGBUS");

	snprintf(got, sizeof(got), "errno=%s", errname(-get_info(fd, &info)));
	bad += !unplug_line("ioctl-info", got, "errno=ENODEV");
	snprintf(got, sizeof(got), "errno=%s", errname(-buf_alloc(fd, 4096, &id)));
	bad += !unplug_line("ioctl-alloc", got, "errno=ENODEV");
	p = map_id(fd, BARMAP_MMAP_ID_BAR, page_size, PROT_READ, MAP_SHARED);
	snprintf(got, sizeof(got), "errno=%s",
		 p == MAP_FAILED ? errname(errno) : "0");
	bad += !unplug_line("mmap", got, "errno=ENODEV");
	snprintf(got, sizeof(got), "errno=%s",
		 errname(ioctl(fd, _IO(BARMAP_IOC_MAGIC, 0x7f)) ? errno : 0));
	bad += !unplug_line("bad-ioctl", got, "errno=ENOTTY");
	munmap((void *)bar, page_size);
	munmap((void *)buf, page_size);
	snprintf(got, sizeof(got), "%s", close(fd) ? errname(errno) : "ok");
	bad += !unplug_line("close", got, "ok");

	ret = sysfs_write("/sys/bus/pci/rescan", "1");
	fd = open(opt.dev, O_RDWR);
	if (fd >= 0)
		close(fd);
	snprintf(got, sizeof(got), "%s", ret ? errname(-ret) :
		 fd < 0 ? "no-node" : "ok");
	bad += !unplug_line("rescan-reopen", got, "ok");
	if (!opt.json)
		printf("%d failed\n", bad);
	return bad ? 1 : 0;
}

/* hold mappings open for a while (rmmod-while-mapped tests) */
static int cmd_hold(long secs)
{
	int fd = dev_open(O_RDWR);
	uint32_t id = 0;
	volatile uint32_t *bar, *buf;

	if (buf_alloc(fd, page_size, &id) || set_cache(fd, cache_mode_opt()))
		return 2;
	bar = map_id(fd, BARMAP_MMAP_ID_BAR, page_size, PROT_READ | PROT_WRITE,
		     MAP_SHARED);
	buf = map_id(fd, id, page_size, PROT_READ | PROT_WRITE, MAP_SHARED);
	if (bar == MAP_FAILED || buf == MAP_FAILED)
		return 2;
	close(fd);		/* the mappings alone keep the file */
	bar[0] = 0xc0ffee;
	buf[0] = 0xc0ffee;
	sleep(secs);
	rec_begin();
	rec_s("hold", "done");
	rec_s("verdict", bar[0] == 0xc0ffee && buf[0] == 0xc0ffee ? "PASS" : "FAIL");
	rec_end(NULL);
	return 0;
}

/* ---- main ---- */

static void usage(void)
{
	fprintf(stderr,
		"usage: barmap-check [check|info|probe-refusals|hostile|cross|bench|unplug]\n"
		"  [--dev /dev/barmap0] [--strategy bar|dma|reserved|all] [--size N]\n"
		"  [--pattern offset,walk,55aa,random|all] [--width 8,16,32,64,memcpy|all]\n"
		"  [--sizes 1,1024,1025,page,whole|all] [--cache uc|wc] [--seed S]\n"
		"  [--random-ops N] [--json] [-v]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *cmd = "check";
	int i, ret;

	page_size = sysconf(_SC_PAGESIZE);
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

#define ARG(name) (!strcmp(a, name) && v && (i++, 1))
		if (ARG("--dev")) {
			opt.dev = v;
		} else if (ARG("--strategy")) {
			opt.strategy = v;
		} else if (ARG("--size")) {
			opt.size = parse_size(v);
		} else if (ARG("--pattern") || ARG("--patterns")) {
			opt.patterns = v;
		} else if (ARG("--width") || ARG("--widths")) {
			opt.widths = v;
		} else if (ARG("--sizes")) {
			opt.sizes = v;
		} else if (ARG("--cache")) {
			opt.cache = v;
		} else if (ARG("--seed")) {
			opt.seed = strtoull(v, NULL, 0);
			opt.seed_given = true;
		} else if (ARG("--random-ops")) {
			opt.random_ops = strtol(v, NULL, 0);
			cmd = "random-ops";
		} else if (!strcmp(a, "--json")) {
			opt.json = true;
		} else if (!strcmp(a, "-v")) {
			opt.verbose++;
		} else if (a[0] != '-') {
			cmd = a;
		} else {
			usage();
		}
#undef ARG
	}
	if (!opt.seed_given)
		opt.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);

	out_begin();
	if (!strcmp(cmd, "check"))
		ret = cmd_check();
	else if (!strcmp(cmd, "info"))
		ret = cmd_info();
	else if (!strcmp(cmd, "probe-refusals"))
		ret = cmd_matrix(true);
	else if (!strcmp(cmd, "hostile"))
		ret = cmd_matrix(false);
	else if (!strcmp(cmd, "cross"))
		ret = cmd_cross();
	else if (!strcmp(cmd, "bench"))
		ret = cmd_bench();
	else if (!strcmp(cmd, "random-ops"))
		ret = cmd_random();
	else if (!strcmp(cmd, "unplug"))
		ret = cmd_unplug();
	else if (!strcmp(cmd, "hold"))
		ret = cmd_hold(opt.size ? (long)opt.size : 5);
	else
		usage();
	out_end();
	return ret;
}
