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

/* ---- mmap racing with removal: does a mapping outlive its device? ---- */

/*
 * One cycle: a child maps the BAR over and over (keeping the newest
 * mapping, touching it so fault-time mappings get their PTE) until mmap()
 * fails because the device went away.  The device is removed (sysfs, or by
 * the host with "--remover host") and comes back; the parent writes a
 * marker into the new device, the child reads and writes through its last
 * old mapping.  Stale: the old mapping did not fault (it read something, or
 * its write reached the new device).
 */
struct race_result {
	int read_sig;		/* 0: the read returned a value */
	uint32_t read_val;
	int write_sig;
	bool mapped;		/* the child had a mapping when mmap failed */
};

#define RACE_MARKER	0x5a1e0000u
#define RACE_POISON	0xdeadbeefu

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

static void race_child(int fd, const struct strategy *st, int started,
		       int go, int result)
{
	struct race_result r = { 0 };
	volatile uint32_t *prev = NULL, *q;
	uint32_t v;
	char c = 0;

	for (long i = 0; i < 10000000; i++) {
		q = map_id(fd, st->id, page_size, PROT_READ | PROT_WRITE,
			   MAP_SHARED);
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

int cmd_race(void)
{
	const struct strategy *st = io_strategy();
	bool host = opt.remover && !strcmp(opt.remover, "host");
	long cycles = opt.count ? opt.count : 200, stale = 0, mapped = 0;
	long same_addr = 0, done = 0;
	char dir[300], path[400], c = 0;
	int fd = dev_open(O_RDWR), ret;
	struct barmap_info info;
	uint64_t addr;
	double t0 = now();

	guard_install();
	rng_state = opt.seed | 1;
	if (st->obj != OBJ_BAR || get_info(fd, &info) ||
	    pci_dir_of(fd, dir, sizeof(dir))) {
		fprintf(stderr, "barmap-check race: needs a BAR strategy and a device\n");
		return 2;
	}
	addr = info.bar_phys;
	for (done = 0; done < cycles; done++) {
		int started[2], go[2], result[2], fd2, status;
		struct race_result r = { 0 };
		volatile uint32_t *np;
		uint32_t marker = RACE_MARKER | (uint32_t)done;
		bool is_stale;
		pid_t pid;

		if (pipe(started) || pipe(go) || pipe(result))
			return 2;
		pid = fork();
		if (!pid)
			race_child(fd, st, started[1], go[0], result[1]);
		close(fd);
		if (read(started[0], &c, 1) != 1)
			return 2;
		if (host) {	/* the host removes and re-adds the device */
			fprintf(stderr, "race: cycle %ld mapping\n", done);
		} else {
			usleep(rng_below(3000));
			snprintf(path, sizeof(path), "%s/remove", dir);
			ret = sysfs_write(path, "1");
			if (!ret)
				ret = sysfs_write("/sys/bus/pci/rescan", "1");
			if (ret) {
				fprintf(stderr, "race: remove/rescan: %s\n",
					errname(-ret));
				return 2;
			}
		}
		/* the device that came back: a new one, maybe at the same address */
		fd2 = open_pci_dev(dir, info.minor, host ? 120 : 20);
		if (fd2 < 0) {
			fprintf(stderr, "race: no device after cycle %ld\n", done);
			kill(pid, SIGKILL);
			return 2;
		}
		if (get_info(fd2, &info))
			return 2;
		same_addr += info.bar_phys == addr;
		np = map_id(fd2, BARMAP_MMAP_ID_BAR, page_size,
			    PROT_READ | PROT_WRITE, MAP_SHARED);
		if (np == MAP_FAILED)
			return 2;
		np[0] = marker;
		np[1] = 0;
		if (write(go[1], &c, 1) != 1 ||
		    read(result[0], &r, sizeof(r)) != sizeof(r))
			return 2;
		waitpid(pid, &status, 0);
		mapped += r.mapped;
		is_stale = r.mapped && (!r.read_sig || np[1] == RACE_POISON);
		stale += is_stale;
		if (is_stale && !opt.json)
			printf("  cycle %ld: stale mapping read %#x (new device's marker %#x), its write %s the new device\n",
			       done, r.read_val, marker,
			       np[1] == RACE_POISON ? "reached" : "missed");
		munmap((void *)np, page_size);
		close(started[0]);
		close(started[1]);
		close(go[0]);
		close(go[1]);
		close(result[0]);
		close(result[1]);
		fd = fd2;
		addr = info.bar_phys;
	}
	close(fd);
	rec_begin();
	rec_s("race", st->name);
	rec_s("remover", host ? "host" : "sysfs");
	rec_u("cycles", done);
	rec_u("mapped", mapped);
	rec_u("same_address", same_addr);
	rec_u("stale", stale);
	rec_f("seconds", now() - t0);
	rec_s("verdict", stale ? "FAIL" : "PASS");
	rec_end(NULL);
	return stale ? 1 : 0;
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
