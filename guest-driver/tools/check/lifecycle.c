// SPDX-License-Identifier: GPL-2.0-only
#include "check.h"

/* ---- hot unplug while mapped, then rescan ---- */

int sysfs_write(const char *path, const char *val)
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

int cmd_unplug(void)
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

/* the single BAR or reserved strategy --strategy names ("all": bar) */
static const struct strategy *io_strategy(void)
{
	const struct strategy *st = strcmp(opt.strategy, "all") ?
		strategy_named(opt.strategy) : strategy_named("bar");

	if (!st || st->obj == OBJ_BUF) {
		fprintf(stderr, "barmap-check: needs one BAR or reserved strategy, not '%s'\n",
			opt.strategy);
		exit(2);
	}
	return st;
}

/* hold mappings open for a while (rmmod-while-mapped and PAT tests) */
static void hold_wake(int sig)
{
	(void)sig;
}

/*
 * Map a page of the row --strategy names (any row: "all" is bar) and of a
 * coherent buffer, write a word to each, hold the mappings for secs seconds
 * (or until SIGUSR1), then check the words are still there.
 */
int cmd_hold(long secs)
{
	const struct strategy *st = strcmp(opt.strategy, "all") ?
		strategy_named(opt.strategy) : strategy_named("bar");
	int fd = open(opt.dev, O_RDWR | O_CLOEXEC), ret;
	struct barmap_info info = { 0 };
	struct target t;
	uint32_t id = 0;
	volatile uint32_t *io, *buf;
	struct sigaction wake = { .sa_handler = hold_wake };	/* no SA_RESTART */
	bool ok;

	if (!st || strchr(opt.strategy, ',')) {
		fprintf(stderr, "barmap-check hold: needs one strategy, not '%s'\n", opt.strategy);
		return 2;
	}
	if (fd < 0 && driver_row(st)) {
		fprintf(stderr, "barmap-check hold: %s: %s\n", opt.dev, strerror(errno));
		return 2;
	}
	sigaction(SIGUSR1, &wake, NULL);	/* ends sleep() early */
	if (fd >= 0)
		get_info(fd, &info);
	ret = fd < 0 ? 0 : set_cache(fd, cache_mode_opt());
	if (!ret && fd >= 0)
		ret = buf_alloc(fd, page_size, &id);
	if (!ret)
		ret = target_get(fd, &info, st, page_size, &t);
	if (ret) {
		fprintf(stderr, "barmap-check hold: %s: %s\n", st->name, errname(-ret));
		return 2;
	}
	io = target_map(&t, page_size, PROT_READ | PROT_WRITE);
	buf = fd < 0 ? MAP_FAILED :
	      map_id(fd, id, page_size, PROT_READ | PROT_WRITE, MAP_SHARED);
	if (io == MAP_FAILED || (fd >= 0 && buf == MAP_FAILED)) {
		fprintf(stderr, "barmap-check hold: mmap %s: %s\n", st->name,
			strerror(errno));
		return 2;
	}
	if (fd < 0)
		buf = io;	/* a kernel row without barmap's device: one mapping */
	if (fd >= 0)
		close(fd);	/* the mappings alone keep the files */
	io[0] = 0xc0ffee;
	buf[0] = 0xc0ffee;
	/* where they are, for whoever looks at this process (barmap-why --pid --addr) */
	rec_begin();
	rec_s("hold", "mapped");
	rec_u("pid", getpid());
	rec_x("io", (uintptr_t)io);
	rec_x("buf", (uintptr_t)buf);
	rec_end(NULL);
	fflush(stdout);
	sleep(secs);
	ok = io[0] == 0xc0ffee && buf[0] == 0xc0ffee;
	rec_begin();
	rec_s("hold", "done");
	rec_s("verdict", ok ? "PASS" : "FAIL");
	rec_end(NULL);
	return ok ? 0 : 1;
}

/* ---- the PCI device behind a file, and the one that comes back after a removal ---- */

/* /sys/bus/pci/devices/BDF of the device behind fd */
int pci_dir_of(int fd, char *out, size_t n)
{
	char link[256], target[256];
	struct stat st;
	ssize_t len;
	const char *bdf;

	if (fstat(fd, &st))
		return -errno;
	snprintf(link, sizeof(link), "/sys/dev/char/%u:%u/device",
		 major(st.st_rdev), minor(st.st_rdev));
	len = readlink(link, target, sizeof(target) - 1);
	if (len < 0)
		return -errno;
	target[len] = 0;
	bdf = strrchr(target, '/');
	snprintf(out, n, "/sys/bus/pci/devices/%s", bdf ? bdf + 1 : target);
	return 0;
}

/*
 * Open the barmapN of the PCI device at dir, N != old_minor (the old device
 * keeps its minor while a file of it is open), waiting up to secs for it.
 */
int open_pci_dev(const char *dir, uint32_t old_minor, double secs)
{
	double end = now() + secs;
	char path[512], node[300];
	struct dirent *e;
	DIR *d;
	int fd;

	snprintf(path, sizeof(path), "%s/barmap", dir);
	do {
		d = opendir(path);
		while (d && (e = readdir(d))) {
			if (strncmp(e->d_name, "barmap", 6) ||
			    strtoul(e->d_name + 6, NULL, 10) == old_minor)
				continue;
			snprintf(node, sizeof(node), "/dev/%s", e->d_name);
			fd = open(node, O_RDWR | O_CLOEXEC);
			if (fd >= 0) {
				closedir(d);
				return fd;
			}
		}
		if (d)
			closedir(d);
		usleep(2000);
	} while (now() < end);
	return -ENODEV;
}

/* ---- how many faults a whole-object mapping takes (PMD or PTE) ---- */


static long minor_faults(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}

int cmd_faults(void)
{
	const struct strategy *st = io_strategy();
	int fd = dev_open(O_RDWR);
	struct barmap_info info;
	volatile uint8_t *p;
	uint64_t size, off;
	uint32_t sum = 0;
	long before, faults;

	if (get_info(fd, &info))
		return 2;
	size = object_size(&info, st->obj);
	if (opt.size && opt.size < size)
		size = opt.size;
	p = map_id(fd, st->id, size, PROT_READ | PROT_WRITE, MAP_SHARED);
	if (p == MAP_FAILED) {
		fprintf(stderr, "barmap-check faults: mmap %s: %s\n", st->name,
			strerror(errno));
		return 2;
	}
	before = minor_faults();
	for (off = 0; off < size; off += page_size)
		sum += p[off];
	faults = minor_faults() - before;
	munmap((void *)p, size);
	close(fd);
	rec_begin();
	rec_s("faults", st->name);
	rec_x("address", (uintptr_t)p);
	rec_u("bytes", size);
	rec_u("pages", size / page_size);
	rec_u("count", faults);
	rec_x("sum", sum);
	rec_end(NULL);
	return 0;
}
