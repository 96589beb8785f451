// SPDX-License-Identifier: GPL-2.0-only
/* What the kernel says about an address: each reader returns, never writes. */
#include <dirent.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <sys/ioctl.h>

#include "barmap_uapi.h"
#include "why.h"

#define IORESOURCE_MEM		0x00000200
#define IORESOURCE_UNSET	0x20000000

int find_vma(int pid, uint64_t addr, struct vma *v)
{
	char path[64], line[TEXT + 128];
	FILE *f;
	int ret = -ENOENT;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long s, e, off;
		char perms[8], dev[16];
		unsigned long inode;
		int used = 0;

		if (sscanf(line, "%llx-%llx %7s %llx %15s %lu %n", &s, &e, perms, &off,
			   dev, &inode, &used) < 6)
			continue;
		if (addr < s || addr >= e)
			continue;
		memset(v, 0, sizeof(*v));
		v->start = s;
		v->end = e;
		v->offset = off;
		snprintf(v->perms, sizeof(v->perms), "%s", perms);
		snprintf(v->path, sizeof(v->path), "%s", used ? line + used : "");
		v->path[strcspn(v->path, "\n")] = 0;
		if (strlen(v->path) > 10 &&
		    !strcmp(v->path + strlen(v->path) - 10, " (deleted)")) {
			v->deleted = true;
			v->path[strlen(v->path) - 10] = 0;
		}
		ret = 0;
		break;
	}
	fclose(f);
	return ret;
}

/* n bytes at off of /proc/PID/name: the bytes read, or -errno */
static int proc_pread(int pid, const char *name, void *buf, size_t n, off_t off)
{
	char path[64];
	ssize_t got;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/%s", pid, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	got = pread(fd, buf, n, off);
	close(fd);
	return got < 0 ? -errno : (int)got;
}

int read_pfn(int pid, uint64_t addr, uint64_t *pfn)
{
	uint64_t e;
	int got = proc_pread(pid, "pagemap", &e, 8, (off_t)(addr / 4096) * 8);

	if (got < 0)
		return got;
	if (got != 8)
		return -EIO;
	if (!(e >> 63))
		return 0;	/* not present */
	*pfn = e & ((1ULL << 55) - 1);
	return *pfn ? 1 : -EPERM;	/* the PFN is 0 for who is not CAP_SYS_ADMIN */
}

int read_remote(int pid, uint64_t addr, uint8_t *buf, size_t n)
{
	return proc_pread(pid, "mem", buf, n, (off_t)addr);
}

int64_t page_flags(uint64_t pfn)
{
	uint64_t flags;
	int fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (pread(fd, &flags, 8, (off_t)pfn * 8) != 8) {
		close(fd);
		return -EIO;
	}
	close(fd);
	return (int64_t)(flags & INT64_MAX);
}

int iomem_lookup(uint64_t phys, struct iomem_path *p)
{
	char line[256];
	FILE *f = fopen("/proc/iomem", "re");
	bool any = false;

	memset(p, 0, sizeof(*p));
	if (!f)
		return -errno;
	p->zeroed = true;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long s, e;
		int depth = 0, used = 0;

		while (line[depth] == ' ')
			depth++;
		depth /= 2;
		if (sscanf(line + depth * 2, "%llx-%llx : %n", &s, &e, &used) < 2 || !used)
			continue;
		any = true;
		if (s || e)
			p->zeroed = false;
		if (depth >= IOMEM_DEPTH || phys < s || phys > e || depth > p->n)
			continue;
		p->n = depth + 1;
		snprintf(p->name[depth], sizeof(p->name[depth]), "%s",
			 line + depth * 2 + used);
		p->name[depth][strcspn(p->name[depth], "\n")] = 0;
		p->start[depth] = s;
		p->end[depth] = e;
	}
	fclose(f);
	if (!any)
		p->zeroed = false;
	return 0;
}

bool iomem_has(const struct iomem_path *p, const char *name)
{
	for (int i = 0; i < p->n; i++)
		if (strstr(p->name[i], name))
			return true;
	return false;
}

/* a big-endian cell array of a device-tree property; cells read, or -errno */
static int dt_cells(const char *path, uint32_t *cells, int max)
{
	unsigned char buf[256];
	ssize_t len;
	int fd = open(path, O_RDONLY | O_CLOEXEC), i;

	if (fd < 0)
		return -errno;
	len = read(fd, buf, sizeof(buf));
	close(fd);
	if (len < 0)
		return -errno;
	for (i = 0; i < max && (i + 1) * 4 <= len; i++)
		cells[i] = (uint32_t)buf[4 * i] << 24 | buf[4 * i + 1] << 16 |
			   buf[4 * i + 2] << 8 | buf[4 * i + 3];
	return i;
}

static uint64_t dt_number(const uint32_t *c, int n)
{
	return n == 2 ? (uint64_t)c[0] << 32 | c[1] : c[0];
}

/* whether phys lies in a reg of the nodes DIR/PREFIX* (#address/#size-cells of DIR) */
static bool dt_reg_has(const char *dir, const char *prefix, uint64_t phys, char *name,
		       size_t n)
{
	char path[400];
	uint32_t ac = 2, sc = 2, c[64];
	struct dirent *e;
	DIR *d = opendir(dir);
	bool hit = false;
	int k, i;

	if (!d)
		return false;
	snprintf(path, sizeof(path), "%s/#address-cells", dir);
	if (dt_cells(path, c, 1) == 1)
		ac = c[0];
	snprintf(path, sizeof(path), "%s/#size-cells", dir);
	if (dt_cells(path, c, 1) == 1)
		sc = c[0];
	while (!hit && (e = readdir(d))) {
		if (strncmp(e->d_name, prefix, strlen(prefix)) || ac > 2 || sc > 2)
			continue;
		snprintf(path, sizeof(path), "%s/%.64s/reg", dir, e->d_name);
		k = dt_cells(path, c, 64);
		for (i = 0; k > 0 && i + (int)(ac + sc) <= k; i += ac + sc) {
			uint64_t base = dt_number(c + i, ac), size = dt_number(c + i + ac, sc);

			if (phys >= base && phys - base < size) {
				snprintf(name, n, "%.64s", e->d_name);
				hit = true;
				break;
			}
		}
	}
	closedir(d);
	return hit;
}

#define DT_BASE "/sys/firmware/devicetree/base"

/* a machine with a device tree (arm64): its memory nodes, and reserved-memory's */
static int dt_firmware_type(uint64_t phys, char *type, size_t n)
{
	char node[80];

	if (access(DT_BASE, F_OK))
		return -ENOENT;
	if (dt_reg_has(DT_BASE "/reserved-memory", "", phys, node, sizeof(node)))
		snprintf(type, n, "reserved-memory %s (device tree)", node);
	else if (dt_reg_has(DT_BASE, "memory", phys, node, sizeof(node)))
		snprintf(type, n, "System RAM");
	return 0;
}

int firmware_type(uint64_t phys, char *type, size_t n)
{
	char path[300], buf[64];
	struct dirent *e;
	DIR *d = opendir("/sys/firmware/memmap");

	type[0] = 0;
	if (!d)
		return dt_firmware_type(phys, type, n);
	while ((e = readdir(d))) {
		uint64_t s, end;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/firmware/memmap/%.32s/start", e->d_name);
		if (read_text(path, buf, sizeof(buf), 0) < 0)
			continue;
		s = strtoull(buf, NULL, 0);
		snprintf(path, sizeof(path), "/sys/firmware/memmap/%.32s/end", e->d_name);
		if (read_text(path, buf, sizeof(buf), 0) < 0)
			continue;
		end = strtoull(buf, NULL, 0);
		if (phys < s || phys > end)
			continue;
		snprintf(path, sizeof(path), "/sys/firmware/memmap/%.32s/type", e->d_name);
		if (read_text(path, buf, sizeof(buf), 0) >= 0) {
			buf[strcspn(buf, "\n")] = 0;
			snprintf(type, n, "%s", buf);
		}
		break;
	}
	closedir(d);
	return 0;
}

/* each line of a device's sysfs resource file: start end flags */
static int read_resources(const char *bdf, uint64_t res[7][3])
{
	char path[128], buf[1024], *line, *save = NULL;
	int i = 0;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource", bdf);
	if (read_text(path, buf, sizeof(buf), 0) < 0)
		return -ENOENT;
	for (line = strtok_r(buf, "\n", &save); line && i < 7;
	     line = strtok_r(NULL, "\n", &save), i++) {
		unsigned long long s, e, f;

		if (sscanf(line, "%llx %llx %llx", &s, &e, &f) != 3)
			return -EINVAL;
		res[i][0] = s;
		res[i][1] = e;
		res[i][2] = f;
	}
	return i;
}

static void fill_hit(const char *bdf, int bar, const uint64_t r[3], struct pci_hit *hit)
{
	memset(hit, 0, sizeof(*hit));
	snprintf(hit->bdf, sizeof(hit->bdf), "%s", bdf);
	hit->bar = bar;
	hit->start = r[0];
	hit->end = r[1];
	hit->size = r[1] >= r[0] && (r[0] || r[1]) ? r[1] - r[0] + 1 : 0;
	hit->unassigned = (r[2] & IORESOURCE_MEM) &&
			  ((r[2] & IORESOURCE_UNSET) || (!r[0] && r[1]));
}

/* every PCI device: call fn until it says stop */
static int each_device(bool (*fn)(const char *bdf, void *arg), void *arg)
{
	struct dirent *e;
	DIR *d = opendir("/sys/bus/pci/devices");
	int found = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && fn(e->d_name, arg)) {
			found = 1;
			break;
		}
	closedir(d);
	return found;
}

struct bar_query {
	uint64_t phys;
	bool unassigned;	/* look for an unassigned BAR of at least phys + 1 bytes */
	struct pci_hit *hit;
};

static bool bar_matches(const char *bdf, void *arg)
{
	struct bar_query *q = arg;
	uint64_t res[7][3];
	int n = read_resources(bdf, res);

	for (int i = 0; i < n && i < 6; i++) {
		struct pci_hit h;

		fill_hit(bdf, i, res[i], &h);
		if (!(res[i][2] & IORESOURCE_MEM) || !h.size)
			continue;
		if (q->unassigned ? h.unassigned && q->phys < h.size :
		    !h.unassigned && q->phys >= h.start && q->phys <= h.end) {
			*q->hit = h;
			return true;
		}
	}
	return false;
}

int pci_find_bar(uint64_t phys, struct pci_hit *hit)
{
	struct bar_query q = { phys, false, hit };

	hit->bar = -1;
	return each_device(bar_matches, &q);
}

int pci_find_unassigned(uint64_t below, struct pci_hit *hit)
{
	struct bar_query q = { below, true, hit };

	hit->bar = -1;
	return each_device(bar_matches, &q);
}

static int read_config(const char *bdf, uint8_t *c, size_t n);

/*
 * A BAR of a device.  The kernel drops the resource of a BAR it could not
 * assign (start, end and flags read 0), so config space says whether there
 * is one: a memory BAR register with its type bits set and no address.
 */
int pci_bar_of(const char *bdf, int bar, struct pci_hit *hit)
{
	uint64_t res[7][3];
	uint8_t c[64];
	uint32_t reg;
	int n = read_resources(bdf, res);

	if (n < 0 || bar < 0 || bar >= n || bar > 5)
		return -ENOENT;
	fill_hit(bdf, bar, res[bar], hit);
	if (res[bar][2] || read_config(bdf, c, sizeof(c)) < 0x28)
		return 0;
	reg = c[0x10 + 4 * bar] | c[0x11 + 4 * bar] << 8 | c[0x12 + 4 * bar] << 16 |
	      (uint32_t)c[0x13 + 4 * bar] << 24;
	if (reg != UINT32_MAX && !(reg & 1) && (reg & 0xe) && !(reg & ~0xfU))
		hit->unassigned = true;	/* 64-bit or prefetchable, at address 0 */
	return 0;
}

/* the kernel's own words about a BAR of a device (its log), "" if none */
void kernel_says(const char *bdf, int bar, char *out, size_t n)
{
	char line[512], want[64];
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	ssize_t len;

	out[0] = 0;
	if (fd < 0)
		return;
	snprintf(want, sizeof(want), "%s: BAR %d ", bdf, bar);
	while ((len = read(fd, line, sizeof(line) - 1)) > 0) {
		const char *msg;

		line[len] = 0;
		line[strcspn(line, "\n")] = 0;
		msg = strchr(line, ';');
		if (msg && strstr(msg, want) && (strstr(msg, "assign") || strstr(msg, "no space")))
			snprintf(out, n, "%s", strstr(msg, want));
	}
	close(fd);
}

bool pci_exists(const char *bdf)
{
	char path[128];

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s", bdf);
	return !access(path, F_OK);
}

/* the BDF in a sysfs path: its last component that looks like DDDD:BB:DD.F */
static bool bdf_in(const char *path, char *bdf, size_t n)
{
	const char *p = path, *best = NULL;

	for (; (p = strchr(p, ':')); p++) {
		const char *s = p - 4;

		if (s >= path && s[4] == ':' && s[7] == ':' && s[10] == '.')
			best = s;
	}
	if (!best)
		return false;
	snprintf(bdf, n, "%.12s", best);
	return true;
}

int pci_of_path(const char *path, char *bdf, size_t n, int *bar)
{
	char link[128], target[PATH_MAX];
	struct stat st;
	ssize_t len;
	const char *res;

	*bar = -1;
	if (!strncmp(path, "/sys/", 5) && bdf_in(path, bdf, n)) {
		res = strstr(path, "/resource");
		if (res)
			*bar = atoi(res + 9);
		return 0;
	}
	if (stat(path, &st) || !S_ISCHR(st.st_mode))
		return -ENOENT;
	snprintf(link, sizeof(link), "/sys/dev/char/%u:%u/device", major(st.st_rdev),
		 minor(st.st_rdev));
	len = readlink(link, target, sizeof(target) - 1);
	if (len < 0)
		return -errno;
	target[len] = 0;
	return bdf_in(target, bdf, n) ? 0 : -ENOENT;
}

static uint16_t rd16(const uint8_t *c, int off)
{
	return c[off] | c[off + 1] << 8;
}

static uint32_t rd32(const uint8_t *c, int off)
{
	return rd16(c, off) | (uint32_t)rd16(c, off + 2) << 16;
}

/* the offset of a capability in config space, 0 none */
static int find_cap(const uint8_t *c, int len, int id)
{
	int off, guard = 48;

	if (len < 0x40 || !(rd16(c, 6) & 0x10))
		return 0;
	for (off = c[0x34] & ~3; off && off + 2 <= len && guard--; off = c[off + 1] & ~3)
		if (c[off] == id)
			return off;
	return 0;
}

static int find_ext_cap(const uint8_t *c, int len, int id)
{
	int off = 0x100, guard = 64;

	while (off && off + 4 <= len && guard--) {
		uint32_t h = rd32(c, off);

		if ((h & 0xffff) == (uint32_t)id)
			return off;
		if (!h || h == UINT32_MAX)
			return 0;
		off = h >> 20;
	}
	return 0;
}

static int read_config(const char *bdf, uint8_t *c, size_t n)
{
	char path[128];
	ssize_t got;
	int fd;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", bdf);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	got = pread(fd, c, n, 0);
	close(fd);
	return got < 0 ? -errno : (int)got;
}

/* the bridge or port above a device: its sysfs parent, if that is a PCI device */
static bool upstream_of(const char *bdf, char *port, size_t n)
{
	char path[128], real[PATH_MAX], *slash;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s", bdf);
	if (!realpath(path, real))
		return false;
	slash = strrchr(real, '/');
	if (!slash)
		return false;
	*slash = 0;
	slash = strrchr(real, '/');
	return slash && bdf_in(slash, port, n) && strcmp(port, bdf);
}

void pci_state(const char *bdf, struct pci_state *s)
{
	uint8_t c[4096], pc[4096];
	char path[160], buf[64];
	int len, plen, pcie;
	ssize_t dl;

	memset(s, 0, sizeof(*s));
	s->power = -1;
	len = read_config(bdf, c, sizeof(c));
	if (len >= 8) {
		s->config_read = true;
		s->vendor = rd16(c, 0);
		s->device = rd16(c, 2);
		s->command = rd16(c, 4);
		s->status = rd16(c, 6);
		s->all_ones = s->vendor == 0xffff && s->device == 0xffff;
	}
	if (s->config_read && !s->all_ones) {
		s->pm = find_cap(c, len, 0x01);
		if (s->pm && s->pm + 6 <= len)
			s->power = rd16(c, s->pm + 4) & 3;
		s->aer = find_ext_cap(c, len, 0x0001);
		if (s->aer) {
			s->aer_uncor = rd32(c, s->aer + 4);
			s->aer_cor = rd32(c, s->aer + 0x10);
		}
	}
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/power_state", bdf);
	if (read_text(path, buf, sizeof(buf), 0) > 0) {
		buf[strcspn(buf, "\n")] = 0;
		snprintf(s->power_sysfs, sizeof(s->power_sysfs), "%s", buf);
	}
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver", bdf);
	dl = readlink(path, buf, sizeof(buf) - 1);
	if (dl > 0) {
		buf[dl] = 0;
		snprintf(s->driver, sizeof(s->driver), "%s",
			 strrchr(buf, '/') ? strrchr(buf, '/') + 1 : buf);
	}
	/* the link: Data Link Layer Link Active of the port above, where it reports it */
	if (!upstream_of(bdf, s->port, sizeof(s->port)))
		return;
	plen = read_config(s->port, pc, sizeof(pc));
	pcie = plen > 0 ? find_cap(pc, plen, 0x10) : 0;
	if (!pcie || pcie + 0x14 > plen)
		return;
	s->port_known = true;
	s->dllla_cap = rd32(pc, pcie + 0x0c) & (1u << 20);
	s->dllla = rd16(pc, pcie + 0x12) & (1u << 13);
}

int pat_memtype(uint64_t phys, char *out, size_t n)
{
	char line[160];
	FILE *f = fopen("/sys/kernel/debug/x86/pat_memtype_list", "re");

	out[0] = 0;
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long s, e;
		char type[48];

		if (sscanf(line, "PAT: [mem 0x%llx-0x%llx] %47s", &s, &e, type) == 3 &&
		    phys >= s && phys < e) {
			snprintf(out, n, "%s", type);
			break;
		}
	}
	fclose(f);
	return 0;
}

static sigjmp_buf guard;

static void on_fault(int sig)
{
	siglongjmp(guard, sig);
}

int devmem_sample(uint64_t phys, uint8_t *buf, size_t n)
{
	struct sigaction sa = { .sa_handler = on_fault }, old_bus, old_segv;
	uint64_t page = phys & ~4095ULL;
	volatile uint32_t *p;
	int fd, ret = 0;
	void *m;

	fd = open("/dev/mem", O_RDONLY | O_SYNC | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, (off_t)page);
	close(fd);
	if (m == MAP_FAILED)
		return -errno;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &old_bus);
	sigaction(SIGSEGV, &sa, &old_segv);
	p = (volatile uint32_t *)((char *)m + ((phys - page) & ~3ULL));
	if (!sigsetjmp(guard, 1)) {
		for (size_t i = 0; i + 4 <= n && (uint8_t *)(p + i / 4) < (uint8_t *)m + 4096; i += 4) {
			uint32_t v = p[i / 4];

			memcpy(buf + i, &v, 4);
		}
	} else {
		ret = -EFAULT;	/* an external abort: nothing answers */
	}
	sigaction(SIGBUS, &old_bus, NULL);
	sigaction(SIGSEGV, &old_segv, NULL);
	munmap(m, 4096);
	return ret;
}

/*
 * pagemap skips PFN maps (VM_PFNMAP), which are what device mappings are;
 * where the barmap driver is loaded its PTE ioctl walks any process's page
 * tables.  1 and the frame, 0 when nothing is mapped there, or -errno.
 */
int barmap_frame(int pid, uint64_t addr, uint64_t *pfn, char *memtype, size_t n)
{
	static const char *const names[] = {
		[BARMAP_MEMTYPE_NONE] = "none", [BARMAP_MEMTYPE_WB] = "write-back",
		[BARMAP_MEMTYPE_WC] = "write-combining", [BARMAP_MEMTYPE_UC_MINUS] = "uncached-minus",
		[BARMAP_MEMTYPE_UC] = "uncached", [BARMAP_MEMTYPE_WT] = "write-through",
		[BARMAP_MEMTYPE_WP] = "write-protect", [BARMAP_MEMTYPE_NORMAL] = "Normal",
		[BARMAP_MEMTYPE_NORMAL_TAGGED] = "Normal-Tagged",
		[BARMAP_MEMTYPE_NORMAL_NC] = "Normal-NC",
		[BARMAP_MEMTYPE_DEVICE_NGNRNE] = "Device-nGnRnE",
		[BARMAP_MEMTYPE_DEVICE_NGNRE] = "Device-nGnRE",
	};
	struct barmap_pte pte = { .addr = addr, .pid = (uint32_t)pid };
	struct dirent *e;
	char node[300];
	int fd = -1, ret;
	DIR *d = opendir("/sys/class/barmap");

	while (d && (e = readdir(d)) && fd < 0) {
		if (strncmp(e->d_name, "barmap", 6))
			continue;
		snprintf(node, sizeof(node), "/dev/%.64s", e->d_name);
		fd = open(node, O_RDONLY | O_CLOEXEC);
	}
	if (d)
		closedir(d);
	if (fd < 0)
		return -ENODEV;
	ret = ioctl(fd, BARMAP_IOC_PTE, &pte) ? -errno : 0;
	close(fd);
	if (ret)
		return ret;
	if (pte.level == BARMAP_PTE_LEVEL_NONE)
		return 0;
	*pfn = pte.pfn;
	snprintf(memtype, n, "%s", pte.memtype < sizeof(names) / sizeof(names[0]) &&
		 names[pte.memtype] ? names[pte.memtype] : "unknown");
	return 1;
}
