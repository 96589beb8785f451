// SPDX-License-Identifier: GPL-2.0-only
#include "check.h"

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
	uint32_t cache;			/* SET_CACHE of the file */
	uint32_t mode[2];		/* in force for OBJ_BAR/OBJ_RESERVED */
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

/* does any live mapping of the model map BAR2 (or the reserved region)? */
static bool obj_mapped(enum object obj)
{
	for (int k = 0; k < R.nm; k++) {
		const struct strategy *st = strategy_of_id(R.m[k].id);

		if (st && st->obj == obj)
			return true;
	}
	return false;
}

static void rop_mmap(int fd, long i, bool private)
{
	const struct strategy *st;
	bool io;
	uint64_t npages, objsize = 0;
	uint32_t id;
	int r = rng_below(10), exp, s, got;
	bool valid;
	size_t len;
	void *p;

	if (r < 3)
		id = rng_below(2) ? BARMAP_MMAP_ID_BAR : BARMAP_MMAP_ID_BAR_REMAP;
	else if (r < 4)
		id = rng_below(2) ? BARMAP_MMAP_ID_RESERVED :
				    BARMAP_MMAP_ID_RESERVED_REMAP;
	else
		id = pick_id() & 0xffff;
	st = strategy_of_id(id);
	s = slot_of(id);
	if (st && st->obj != OBJ_BUF)
		objsize = object_size(&R.info, st->obj);
	else if (s >= 0)
		objsize = R.size[s];
	npages = 1 + rng_below(16);
	if (objsize && rng_below(8) == 0)
		npages = objsize / page_size + 1;	/* past the end */
	if (objsize && npages * page_size > objsize && rng_below(2))
		npages = objsize / page_size;
	len = npages * page_size;
	valid = objsize && len <= objsize;
	io = st && st->obj != OBJ_BUF;
	if (private || !st)
		exp = -EINVAL;
	else if (io && !objsize)
		exp = -ENODEV;
	else if (!valid)
		exp = -EINVAL;
	else if (io && obj_mapped(st->obj) && R.mode[st->obj] != R.cache)
		exp = -EBUSY;	/* one cache mode per object while mapped */
	else
		exp = 0;
	if (R.nm == RMAPS && !exp)
		return;
	p = map_id(fd, id, len, PROT_READ | PROT_WRITE,
		   private ? MAP_PRIVATE : MAP_SHARED);
	got = p == MAP_FAILED ? -errno : 0;
	rop_result(i, private ? 11 : 3, got, exp, exp, "");
	if (!got && io)
		R.mode[st->obj] = R.cache;
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
	if (strategy_of_id(m->id)->obj == OBJ_RESERVED && !R.reserved_is_memory)
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
	a.kind = rng_below(20) == 0 ?
		BARMAP_BUF_KINDS + (uint32_t)rng_below(UINT32_MAX - BARMAP_BUF_KINDS) :
		BARMAP_BUF_COHERENT;
	for (s = 0; s < BARMAP_BUF_MAX; s++)
		used += !!R.size[s];
	if (a.kind >= BARMAP_BUF_KINDS || !a.size || a.size > BARMAP_BUF_SIZE_MAX)
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

int cmd_random(void)
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
	for (i = 0; i < opt.count; i++) {
		int op = rng_below(100);

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
			if (v <= 1)
				R.cache = v;
		} else if (op < 82) {
			rop_bad_ioctl(fd, i);
		} else if (op < 95) {
			rop_touch(i);
		} else if (op < 97) {
			rop_mremap(i);
		} else {
			rop_null(fd, i);
		}
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
	rec_u("random_ops", opt.count);
	rec_x("seed", opt.seed);
	for (k = 0; k < 12; k++)
		rec_u(rop_names[k], R.counts[k]);
	rec_u("unexpected", R.bad);
	rec_f("ops_per_s", opt.count / t);
	rec_s("verdict", R.bad ? "FAIL" : "PASS");
	rec_end(NULL);
	return R.bad ? 1 : 0;
}

