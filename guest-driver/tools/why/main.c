// SPDX-License-Identifier: GPL-2.0-only
/*
 * barmap-why --pid PID --addr VADDR [--expect-phys ADDR] [--json]
 * barmap-why --phys ADDR [--json]
 * barmap-why --device BDF --bar N [--json]
 *
 * Reads what the kernel says about a mapping or a physical address, prints
 * what it found, then one line "cause: KEYWORD".  Exit status 0 only for
 * "ok"; 1 for any other cause; 2 for a bad argument (one line).
 */
#include <signal.h>

#include "why.h"

/* KPF_* bits of /proc/kpageflags: pages the kernel itself is using */
#define KPF_LRU		5
#define KPF_SLAB	7
#define KPF_BUDDY	10
#define KPF_ANON	12
#define KPF_NOPAGE	20

static bool json;
static char facts[48][2][TEXT];
static int nfacts;
static char unknowns[16][TEXT];
static int nunknowns;

void fact(const char *key, const char *fmt, ...)
{
	va_list ap;

	if (nfacts == 48)
		return;
	snprintf(facts[nfacts][0], TEXT, "%s", key);
	va_start(ap, fmt);
	vsnprintf(facts[nfacts][1], TEXT, fmt, ap);
	va_end(ap);
	nfacts++;
}

void unknown(const char *what, const char *why)
{
	if (nunknowns < 16)
		snprintf(unknowns[nunknowns++], TEXT, "%s (%s)", what, why);
}

static int finish(const char *cause, const char *why)
{
	fact("why", "%s", why);
	if (json) {
		printf("{\"facts\": {");
		for (int i = 0; i < nfacts; i++) {
			printf("%s", i ? ", " : "");
			json_str(facts[i][0]);
			printf(": ");
			json_str(facts[i][1]);
		}
		printf("}, \"not_checked\": [");
		for (int i = 0; i < nunknowns; i++) {
			printf("%s", i ? ", " : "");
			json_str(unknowns[i]);
		}
		printf("], \"cause\": ");
		json_str(cause);
		printf("}\n");
	} else {
		for (int i = 0; i < nfacts; i++)
			printf("%s: %s\n", facts[i][0], facts[i][1]);
		for (int i = 0; i < nunknowns; i++)
			printf("not checked: %s\n", unknowns[i]);
		printf("cause: %s\n", cause);
	}
	return strcmp(cause, "ok") ? 1 : 0;
}

static void usage_error(const char *msg)
{
	fprintf(stderr, "barmap-why: %s (usage: --pid PID --addr VADDR [--expect-phys ADDR]"
		" | --phys ADDR | --device BDF --bar N; --json)\n", msg);
	exit(2);
}

static uint64_t number(const char *s, const char *what)
{
	char *end;
	uint64_t v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || !*s || *end) {
		char msg[128];

		snprintf(msg, sizeof(msg), "%s '%s' is not a number", what, s);
		usage_error(msg);
	}
	return v;
}

/* "all 0xff", "all 0x00" or "" for bytes that mean something */
static const char *uniform(const uint8_t *b, int n)
{
	int ff = 0, zero = 0;

	for (int i = 0; i < n; i++) {
		ff += b[i] == 0xff;
		zero += !b[i];
	}
	return n > 0 && ff == n ? "all 0xff" : n > 0 && zero == n ? "all 0x00" : "";
}

static void sample_fact(const char *key, const uint8_t *b, int n)
{
	char hex[TEXT];
	int used = 0;

	for (int i = 0; i < n && i < 16; i++)
		used += snprintf(hex + used, sizeof(hex) - used, "%02x ", b[i]);
	fact(key, "%s(%s)", hex, *uniform(b, n) ? uniform(b, n) : "mixed");
}

/* what the PCI device says of itself; a cause when it explains the reads, else NULL */
static const char *device_cause(const struct pci_hit *hit, const char **why)
{
	struct pci_state s;

	pci_state(hit->bdf, &s);
	fact("pci", "%s BAR%d %#" PRIx64 "-%#" PRIx64 ", driver %s", hit->bdf, hit->bar,
	     hit->start, hit->end, s.driver[0] ? s.driver : "none");
	if (s.port_known)
		fact("link", "port %s: %s", s.port, !s.dllla_cap ?
		     "does not report Data Link Layer Link Active" :
		     s.dllla ? "link active (DLLLA)" : "link down by DLLLA");
	if (!s.config_read) {
		unknown("the device's config space", "unreadable");
		if (s.port_known && s.dllla_cap && !s.dllla) {
			*why = "the port above the device reports its link down";
			return "link-down";
		}
		return NULL;
	}
	/* a config read crosses the link: a device that answers has one (whatever
	 * DLLLA says: QEMU's root ports with ACPI hot-plug never set it) */
	if (s.all_ones) {
		fact("config", "reads all-ones (vendor 0xffff)");
		*why = "config space answers all-ones: the link to the device is down or it is"
		       " gone from the bus, and its BARs answer all-ones too";
		return "link-down";
	}
	fact("command", "%#06x (memory %s, bus master %s)", s.command,
	     s.command & 2 ? "on" : "OFF", s.command & 4 ? "on" : "off");
	if (s.power >= 0)
		fact("power", "%s (PMCSR)", (const char *[]){ "D0", "D1", "D2", "D3hot" }[s.power]);
	else
		unknown("the power state in PMCSR", "no PM capability read");
	if (s.power_sysfs[0])
		fact("power_state", "%s (sysfs)", s.power_sysfs);
	if (s.aer)
		fact("aer", "uncorrectable %#x, correctable %#x", s.aer_uncor, s.aer_cor);
	if (s.power == 3 || !strncmp(s.power_sysfs, "D3", 2)) {
		*why = "the device is in D3: its memory BARs answer Unsupported Request, all-ones";
		return "device-d3";
	}
	if (!(s.command & 2)) {
		*why = "Memory Space Enable is off in COMMAND: the device decodes none of its"
		       " memory BARs (setpci COMMAND bit 1 turns it on)";
		return "memory-decode-off";
	}
	return NULL;
}

static bool is_device_path(const char *path)
{
	return !strncmp(path, "/dev/", 5) || !strncmp(path, "/sys/", 5);
}

static int explain(int pid, uint64_t addr, bool pid_mode, uint64_t phys, bool expect,
		   uint64_t expect_phys, const char *dev_bdf, int dev_bar)
{
	char bdf[32] = "", type[64], memtype[64];
	struct iomem_path io;
	struct pci_hit hit = { .bar = -1 }, own = { .bar = -1 };
	struct vma v = { 0 };
	const char *cause, *why = "";
	uint8_t sample[64];
	uint64_t pfn = 0;
	int got = -1, ret, map_bar = -1;
	bool have_phys = !pid_mode;

	if (dev_bdf) {		/* --device BDF --bar N */
		if (!pci_exists(dev_bdf))
			return finish("device-removed", "no such PCI device (removed, or never there)");
		char said[TEXT];

		if (pci_bar_of(dev_bdf, dev_bar, &own))
			usage_error("no such BAR");
		kernel_says(dev_bdf, dev_bar, said, sizeof(said));
		if (said[0])
			fact("kernel", "%s", said);
		if (own.unassigned)
			return finish("bar-unassigned", "the kernel gave this BAR no address"
				      " (a resource conflict or no room in the bridge's window):"
				      " nothing decodes it");
		if (!own.size)
			usage_error("the device has no such memory BAR");
		phys = own.start;
		have_phys = true;
	}
	if (pid_mode) {
		ret = find_vma(pid, addr, &v);
		if (ret == -ENOENT) {
			char msg[96];

			snprintf(msg, sizeof(msg), "process %d has no mapping at %#" PRIx64, pid, addr);
			usage_error(msg);
		}
		if (ret)
			usage_error("cannot read the process's maps");
		fact("mapping", "%#" PRIx64 "-%#" PRIx64 " %s offset %#" PRIx64 " %s%s", v.start,
		     v.end, v.perms, v.offset, v.path[0] ? v.path : "(anonymous)",
		     v.deleted ? " (deleted)" : "");
		if (v.deleted && is_device_path(v.path))
			return finish("device-removed", "the file the mapping maps is gone: its device"
				      " was removed, and the mapping is revoked or stale");
		if (is_device_path(v.path) && !pci_of_path(v.path, bdf, sizeof(bdf), &map_bar)) {
			fact("device", "%s%s", bdf, map_bar >= 0 ? " (a BAR of it)" : "");
			if (!pci_exists(bdf))
				return finish("device-removed", "the mapping's PCI device is gone");
		}
		got = read_remote(pid, addr, sample, sizeof(sample));	/* faults it in too */
		if (got > 0)
			sample_fact("sample", sample, got);
		else
			fact("sample", "reading it fails (%s)", strerror(-got));
		ret = read_pfn(pid, addr, &pfn);
		if (ret == 0 || ret == -EPERM) {
			char mt[48];
			/* a PFN map: pagemap's walk skips it */
			int bret = barmap_frame(pid, addr, &pfn, mt, sizeof(mt));

			if (bret >= 0) {
				ret = bret;
				if (bret)
					fact("pte", "%s (page tables, barmap's walk)", mt);
			} else if (ret == 0) {
				unknown("the frame", "a PFN map, which pagemap does not show, and no"
					" barmap driver to walk the page tables");
				ret = -ENODATA;
			}
		}
		if (ret == -EPERM)
			unknown("the frame (pagemap PFN)", "needs CAP_SYS_ADMIN");
		else if (ret < 0 && ret != -ENODATA)
			unknown("the frame (pagemap)", strerror(-ret));
		else if (!ret)
			fact("frame", "nothing mapped there (no page-table entry)");
		if (ret == 1) {
			phys = pfn * 4096 + (addr & 4095);
			have_phys = true;
			fact("frame", "pfn %#" PRIx64 " (phys %#" PRIx64 ")", pfn, phys);
		}
	}
	if (!have_phys) {
		if (got <= 0 && v.path[0])
			return finish("device-removed", "the mapping has no page and reading it fails:"
				      " revoked, as a removed device's mappings are");
		return finish("ok", "nothing more can be said without the frame");
	}
	/* the mapped frame against the one meant */
	if (expect && (expect_phys & ~4095ULL) != (phys & ~4095ULL)) {
		fact("expected", "phys %#" PRIx64, expect_phys);
		return finish("wrong-pfn", pfn == expect_phys ?
			      "the mapping's frame number is the physical address: an address was"
			      " passed where a PFN belongs (shift it by PAGE_SHIFT)" :
			      "the mapping maps another frame than the one meant (virt_to_page() of"
			      " DMA-API memory gives such a frame)");
	}
	if (bdf[0] && pfn) {
		for (int b = 0; b < 6; b++) {
			struct pci_hit h;

			if (!pci_bar_of(bdf, b, &h) && h.size && !h.unassigned && h.start == pfn) {
				fact("expected", "phys %#" PRIx64 " (BAR%d of %s)", h.start, b, bdf);
				return finish("wrong-pfn", "the mapping's frame number is the BAR's"
					      " physical address: an address was passed where a PFN"
					      " belongs (shift it by PAGE_SHIFT)");
			}
		}
	}
	if (iomem_lookup(phys, &io) == 0) {
		char chain[TEXT] = "";
		int used = 0;

		for (int i = 0; i < io.n; i++)
			used += snprintf(chain + used, sizeof(chain) - used, "%s%s", i ? " > " : "",
					 io.name[i]);
		if (io.zeroed)
			unknown("who owns the range (/proc/iomem)", "its addresses read 0: not root");
		else
			fact("owner", "%s", io.n ? chain : "nothing in /proc/iomem");
	}
	if (!pat_memtype(phys, memtype, sizeof(memtype)))
		fact("memtype", "%s", memtype[0] ? memtype : "no PAT record (RAM: write-back)");
	if (map_bar >= 0 && !pci_bar_of(bdf, map_bar, &own) && own.unassigned)
		return finish("bar-unassigned", "the mapped BAR has no address");
	if (pci_find_bar(phys, &hit) > 0) {
		cause = device_cause(&hit, &why);
		if (cause)
			return finish(cause, why);
		if (!pid_mode) {
			ret = devmem_sample(phys, sample, 16);
			if (ret == -EPERM)
				return finish("strict-devmem", "/dev/mem refuses the range: a driver"
					      " holds it (IO_STRICT_DEVMEM); map it through that driver");
			if (!ret)
				sample_fact("sample", sample, 16);
		}
		return finish("ok", "a BAR of a device that decodes it, in D0, memory on");
	}
	if (pci_find_unassigned(phys, &hit) > 0) {
		fact("pci", "%s BAR%d: %#" PRIx64 " bytes, no address", hit.bdf, hit.bar, hit.size);
		return finish("bar-unassigned", "a BAR the kernel left unassigned reads as this"
			      " address: nothing decodes it");
	}
	if (iomem_has(&io, "System RAM")) {
		int64_t flags = pfn || !pid_mode ? page_flags(phys / 4096) : -ENOENT;

		if (pid_mode && !is_device_path(v.path))
			return finish("ok", "ordinary memory of the process");
		if (flags < 0) {
			unknown("whether the kernel uses those pages (/proc/kpageflags)",
				strerror((int)-flags));
			if (pid_mode)
				return finish("ok", "System RAM; whose pages they are was not checked");
		} else {
			fact("pages", "kpageflags %#" PRIx64 "%s%s%s%s", (uint64_t)flags,
			     flags >> KPF_BUDDY & 1 ? " free" : "", flags >> KPF_LRU & 1 ? " lru" : "",
			     flags >> KPF_SLAB & 1 ? " slab" : "", flags >> KPF_ANON & 1 ? " anon" : "");
			/* free, or someone's page cache or memory: not a driver's (a slab
			 * page may be its kmalloc()) */
			if (pid_mode && !(flags >> KPF_BUDDY & 1) && !(flags >> KPF_LRU & 1) &&
			    !(flags >> KPF_ANON & 1))
				return finish("ok", "RAM the kernel gave a driver");
		}
		return finish("region-is-ram", "the range is System RAM the kernel uses: no"
			      " reservation holds it (a memmap= that did not take, mem= too large)");
	}
	if (firmware_type(phys, type, sizeof(type)) < 0)
		unknown("the firmware's memory map", "no /sys/firmware/memmap, no device tree");
	else
		fact("firmware", "%s", type[0] ? type : "no entry");
	if (!strcmp(type, "System RAM") || !strncmp(type, "reserved-memory ", 16)) {
		if (!pid_mode && devmem_sample(phys, sample, 16) == -EPERM)
			return finish("strict-devmem", "reserved RAM a driver holds: /dev/mem refuses it");
		return finish("ok", "RAM the firmware has and the kernel left alone (a reservation)");
	}
	if (iomem_has(&io, "PCI Bus"))
		return finish("nothing-decodes", "inside a PCI bridge's window but in no device's"
			      " BAR: a read is a master abort (all-ones on hardware, 0x00 in QEMU"
			      " on x86)");
	return finish("nothing-decodes", "no RAM and no device at this address: reads give"
		      " all-ones on hardware, 0x00 under QEMU on x86, an external abort on"
		      " arm64");
}

int main(int argc, char **argv)
{
	uint64_t addr = 0, phys = 0, expect = 0;
	bool have_pid = false, have_addr = false, have_phys = false, have_expect = false;
	const char *bdf = NULL;
	int pid = 0, bar = -1;

	for (int i = 1; i < argc; i++) {
		static const char *const valued[] = { "--pid", "--addr", "--phys",
						      "--expect-phys", "--device", "--bar" };
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		bool known = false;

		if (!strcmp(a, "--json")) {
			json = true;
			continue;
		}
		for (size_t k = 0; k < sizeof(valued) / sizeof(valued[0]); k++)
			known |= !strcmp(a, valued[k]);
		if (!known) {
			char msg[96];

			snprintf(msg, sizeof(msg), "unknown option '%.40s'", a);
			usage_error(msg);
		}
		if (!v)
			usage_error("an option without its value");
		i++;
		if (!strcmp(a, "--pid")) {
			pid = (int)number(v, "pid");
			have_pid = true;
		} else if (!strcmp(a, "--addr")) {
			addr = number(v, "address");
			have_addr = true;
		} else if (!strcmp(a, "--phys")) {
			phys = number(v, "physical address");
			have_phys = true;
		} else if (!strcmp(a, "--expect-phys")) {
			expect = number(v, "expected physical address");
			have_expect = true;
		} else if (!strcmp(a, "--device")) {
			bdf = v;
		} else {
			bar = (int)number(v, "BAR");
		}
	}
	if (have_pid + have_phys + !!bdf != 1 || have_pid != have_addr ||
	    (have_expect && !have_pid) || (!!bdf != (bar >= 0)))
		usage_error("give --pid and --addr, or --phys, or --device and --bar");
	if (have_pid && kill(pid, 0) && errno == ESRCH)
		usage_error("no such process");
	if (have_pid)
		fact("address", "process %d, %#" PRIx64, pid, addr);
	else if (have_phys)
		fact("address", "phys %#" PRIx64, phys);
	else
		fact("address", "%s BAR%d", bdf, bar);
	return explain(pid, addr, have_pid, phys, have_expect, expect, bdf, bar);
}
