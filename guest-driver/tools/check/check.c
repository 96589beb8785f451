// SPDX-License-Identifier: GPL-2.0-only
#include "check.h"

/* ---- the check mode ---- */

static const char *width_name(int w)
{
	static char b[8];

	if (!w)
		return "memcpy";
	snprintf(b, sizeof(b), "%d", w);
	return b;
}

/* one pattern/width/size pass; returns mismatching bytes or -errno */
static int64_t check_pass(int fd, const struct target *ob, const char *pat,
			  int width, uint64_t n, uint64_t seed)
{
	uint8_t *exp = malloc(n), *got = malloc(n);
	void *p;
	int64_t bad;

	if (!exp || !got) {
		fprintf(stderr, "out of memory\n");
		exit(2);
	}
	p = target_map(ob, n, PROT_READ | PROT_WRITE);
	if (p == MAP_FAILED) {
		bad = -errno;
		goto out;
	}
	fill_pattern(exp, n, pat, seed);
	buf_sync(ob, true);
	write_width(p, exp, n, width);
	read_width(got, p, n, width);
	buf_sync(ob, false);
	bad = compare(ob->st->name, exp, got, n);
	munmap(p, n);
out:
	free(exp);
	free(got);
	return bad;
}

static void size_list(const struct target *ob, uint64_t *v, int *nv)
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
			   const struct strategy *st, bool explicit)
{
	const char *strategy = st->name;
	struct target ob;
	uint64_t sizes[5], total_bad = 0, total_bytes = 0;
	unsigned int pi, wi;
	int ns, si, ret, passes = 0;
	bool ok = true;

	ret = target_get(fd, info, st, opt.size, &ob);
	if (ret) {
		target_put(&ob);
		rec_begin();
		rec_s("strategy", strategy);
		rec_s("error", errname(-ret));
		rec_s("verdict", "SKIP");
		if (ret == -ENODEV && st->obj == OBJ_RESERVED)
			rec_notef("no reserved region: load the module with reserved_base=/reserved_size= and boot with memmap=SIZE$ADDR");
		else if (ret == -ENODEV && !driver_row(st))
			rec_notef("no barmap device %s here (--ref BDF)",
				  st->obj == OBJ_VFIO ? "held by vfio-pci" :
				  "without a driver");
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
	target_put(&ob);
	return ok;
}

int cmd_check(void)
{
	struct barmap_info info;
	int fd = dev_open(O_RDWR), ret, failures = 0;
	bool all = !strcmp(opt.strategy, "all");

	ret = get_info(fd, &info);
	if (ret) {
		fprintf(stderr, "INFO: %s\n", strerror(-ret));
		return 2;
	}
	ret = set_cache(fd, cache_mode_opt());
	if (ret) {
		rec_begin();
		rec_s("set_cache", opt.cache);
		rec_s("error", errname(-ret));
		rec_s("verdict", "FAIL");
		rec_end(NULL);
		failures++;
	}
	for (size_t i = 0; i < n_strategies; i++)
		if (all || list_has(opt.strategy, strategies[i].name))
			failures += !check_strategy(fd, &info, &strategies[i],
						    !all);
	close(fd);
	return failures ? 1 : 0;
}

int cmd_info(void)
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
	rec_s("cache", cache_name(info.cache_mode));
	rec_s("bar_mode", cache_name(info.bar_mode));
	rec_s("reserved_mode", cache_name(info.reserved_mode));
	rec_end(NULL);
	close(fd);
	return 0;
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

int cmd_cross(void)
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

