/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * barmap-why: why a mapping or a physical address reads 0xff (or 0x00, or
 * garbage).  main.c reads the arguments, decides the cause and prints;
 * probe.c reads what the kernel says (maps, pagemap, kpageflags, iomem, the
 * firmware's memory map, PCI config space and resources, the PAT list,
 * /dev/mem).  Nothing here writes to the system.
 */
#ifndef BARMAP_WHY_H
#define BARMAP_WHY_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/common.h"

#define TEXT 256

/* what was found, one line each, in the order found */
void fact(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* what could not be read, and why */
void unknown(const char *what, const char *why);

/* a VMA of /proc/PID/maps */
struct vma {
	uint64_t start, end, offset;
	char perms[8];
	char path[TEXT];
	bool deleted;		/* the file it maps is gone */
};

int find_vma(int pid, uint64_t addr, struct vma *v);
/* pagemap: 1 and the PFN, 0 when not present, -errno when unreadable, -EPERM: hidden */
int read_pfn(int pid, uint64_t addr, uint64_t *pfn);
/* what the process reads at addr (through /proc/PID/mem); bytes read or -errno */
int read_remote(int pid, uint64_t addr, uint8_t *buf, size_t n);
/* /proc/kpageflags of pfn, or -errno */
int64_t page_flags(uint64_t pfn);

/* the /proc/iomem entries that hold phys, outermost first */
#define IOMEM_DEPTH 8
struct iomem_path {
	int n;
	char name[IOMEM_DEPTH][96];
	uint64_t start[IOMEM_DEPTH], end[IOMEM_DEPTH];
	bool zeroed;		/* the addresses read as 0: not root */
};

int iomem_lookup(uint64_t phys, struct iomem_path *p);
bool iomem_has(const struct iomem_path *p, const char *name);
/* the firmware's own memory map (/sys/firmware/memmap): the type at phys, "" for none */
int firmware_type(uint64_t phys, char *type, size_t n);

/* a PCI device and the BAR of it that holds an address */
struct pci_hit {
	char bdf[32];
	int bar;		/* -1: none */
	uint64_t start, end;	/* the BAR's range */
	bool unassigned;	/* a memory BAR the kernel gave no address */
	uint64_t size;
};

/* the device whose memory BAR decodes phys (bar >= 0), or 0 matches */
int pci_find_bar(uint64_t phys, struct pci_hit *hit);
/* a device with a memory BAR of at least size bytes the kernel left unassigned */
int pci_find_unassigned(uint64_t below, struct pci_hit *hit);
/* the PCI device a file is, or maps (a /dev node of a driver, sysfs resourceN) */
int pci_of_path(const char *path, char *bdf, size_t n, int *bar);
int pci_bar_of(const char *bdf, int bar, struct pci_hit *hit);
void kernel_says(const char *bdf, int bar, char *out, size_t n);
bool pci_exists(const char *bdf);

struct pci_state {
	bool config_read;	/* could read config space */
	bool all_ones;		/* it reads all-ones: vendor 0xffff */
	uint16_t vendor, device, command, status;
	int pm;			/* PM capability offset, 0 none */
	int power;		/* PMCSR state 0..3 (D0..D3hot), -1 unknown */
	char power_sysfs[64];	/* sysfs power_state, "" none */
	bool port_known;	/* the upstream port's link was read */
	bool dllla_cap;		/* it reports Data Link Layer Link Active */
	bool dllla;		/* ... and the link is active */
	char port[32];		/* that port's BDF */
	int aer;		/* AER capability offset, 0 none or unread */
	uint32_t aer_uncor, aer_cor;
	char driver[64];
};

void pci_state(const char *bdf, struct pci_state *s);

/* the PAT memtype the kernel recorded for phys, "" none; -errno unreadable */
int pat_memtype(uint64_t phys, char *out, size_t n);
/* /dev/mem: 0 when phys can be mapped (16 bytes sampled), else -errno */
int devmem_sample(uint64_t phys, uint8_t *buf, size_t n);
/* a frame from the barmap driver's page-table walk (a PFN map pagemap cannot see) */
int barmap_frame(int pid, uint64_t addr, uint64_t *pfn, char *memtype, size_t n);

#endif
