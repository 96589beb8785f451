// SPDX-License-Identifier: GPL-2.0-only
#include "check.h"

double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- bandwidth ---- */

/* MB/s of memcpy from src to dst, repeated for a quarter second */
double copy_rate(void *dst, const void *src, size_t n)
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
	w = copy_rate(p, ram, n);
	r = copy_rate(ram, p, n);
	if (table && !opt.json) {
		printf("%-18s %10zu %12.1f %12.1f\n", name, n, w, r);
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

int cmd_bench(void)
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
		printf("%-18s %10s %12s %12s\n", "strategy", "bytes",
		       "write_MB/s", "read_MB/s");
	p = malloc(n);
	memset(p, 0, n);	/* fault it in: measure memory, not first touch */
	bench_one("malloc", p, n, true);
	free(p);
	/* every BAR and reserved strategy in both cache modes */
	for (size_t i = 0; i < n_strategies; i++) {
		const struct strategy *st = &strategies[i];
		char name[64];

		if (st->obj == OBJ_BUF || object_size(&info, st->obj) < n)
			continue;
		for (mode = BARMAP_CACHE_UC; mode <= BARMAP_CACHE_WC; mode++) {
			set_cache(fd, mode);
			p = map_id(fd, st->id, n, PROT_READ | PROT_WRITE,
				   MAP_SHARED);
			if (p == MAP_FAILED)
				continue;
			snprintf(name, sizeof(name), "%s-%s", st->name,
				 cache_name(mode));
			bench_one(name, p, n, true);
			munmap(p, n);
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

