/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * barmap-check: exercise /dev/barmapN from inside the guest.
 *
 * One file per concern: opts.c (the options and the page size every file
 * reads), main.c (the command line: fills the options and runs a command;
 * no other file reads it), out.c (key=value or JSON records), dev.c (the
 * device, the strategy table, guarded access), pattern.c (offset-encoded
 * patterns and access widths), check.c (the check, info and cross
 * commands), matrix.c (the refusal/hostile matrices), random.c (seeded
 * random operations against a model), bench.c (bandwidth), lifecycle.c
 * (unplug, unplug races, fault counts, hold), target.c (one mappable object
 * of a row), atlas.c (every row through one scenario matrix).
 */
#ifndef BARMAP_CHECK_H
#define BARMAP_CHECK_H

#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../common/common.h"
#include "barmap_regs.h"
#include "barmap_uapi.h"

#define MAX_SHOWN 4

/* opts.c */
struct options {
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
	long count;		/* --random-ops N, race --count N */
	const char *remover;	/* race: "sysfs" (default) or "host" */
	const char *ref;	/* --ref BDF: the vfio/resource2 rows' device */
	const char *scenarios;	/* atlas: --scenarios NAME,...|all */
	const char *blockdev;	/* atlas: --blockdev PATH for O_DIRECT */
};

extern struct options opt;
extern long page_size;
bool list_has(const char *list, const char *word);

/* out.c */
void out_begin(void);
void out_end(void);
void rec_begin(void);
void rec_s(const char *k, const char *v);
void rec_u(const char *k, uint64_t v);
void rec_x(const char *k, uint64_t v);
void rec_f(const char *k, double v);
void rec_notef(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void rec_end(const char *word);
const char *errname(int e);

/* dev.c: the mmap strategies, one row each (the driver has the same table) */
enum object { OBJ_BAR, OBJ_RESERVED, OBJ_BUF, OBJ_VFIO, OBJ_RESOURCE };

struct strategy {
	const char *name;
	uint32_t id;		/* mmap id; buffer rows: the kind's first id */
	enum object obj;
	bool eager;		/* page tables filled in mmap(), not at fault */
	uint32_t kind;		/* buffer rows: BARMAP_BUF_* */
	const char *api;	/* what the row's mmap function calls */
};

extern const struct strategy strategies[];
extern const size_t n_strategies;
const struct strategy *strategy_named(const char *name);
const struct strategy *strategy_of_id(uint32_t id);
bool driver_row(const struct strategy *st);
uint64_t object_size(const struct barmap_info *info, enum object obj);

int dev_open(int flags);
int get_info(int fd, struct barmap_info *info);
int buf_alloc(int fd, uint64_t size, uint32_t *id);
int buf_alloc_kind(int fd, uint32_t kind, uint64_t size, uint32_t *id);
int buf_free(int fd, uint32_t id);
int do_dma(int fd, uint32_t id, uint64_t bar_off, uint64_t buf_off,
	   uint64_t len, uint32_t dir, uint32_t *status);
int set_cache(int fd, uint32_t mode);
uint32_t cache_mode_opt(void);
const char *cache_name(uint32_t mode);
void *map_id(int fd, uint32_t id, size_t len, int prot, int flags);
void guard_install(void);
int guarded_rw32(volatile uint32_t *p, uint32_t *val, bool write);
void guarded_read_outcome(volatile uint32_t *p, char *out, size_t n);

/*
 * target.c: one object of a row, ready to map: the BAR or the region, a
 * buffer of the row's kind (a dma-buf exported), vfio-pci's BAR2 region or
 * sysfs resource2 of the reference device (--ref BDF, or the first barmap
 * device vfio-pci holds / no driver holds).
 */
struct target {
	const struct strategy *st;
	int fd;			/* the barmap file for ioctls (-1: none) */
	int map_fd;		/* the file mmap() maps */
	off_t map_off;
	uint32_t id;		/* buffer rows: the buffer */
	uint64_t size;		/* the whole object */
	bool allocated;
	int vfio_group, vfio_container;
	char bdf[32];		/* vfio and resource2 rows: the device */
};

int target_get(int fd, const struct barmap_info *info,
	       const struct strategy *st, uint64_t want, struct target *t);
void *target_map(const struct target *t, size_t len, int prot);
void target_put(struct target *t);
int buf_sync(const struct target *t, bool start);
void pci_driver_of(const char *bdf, char *out, size_t n);

/* pattern.c */
extern uint64_t rng_state;
extern const char *const all_patterns[4];
extern const int all_widths[5];
uint64_t rng(void);
uint64_t rng_below(uint64_t n);
void fill_pattern(uint8_t *p, size_t n, const char *pat, uint64_t seed);
void write_width(volatile void *dst, const uint8_t *src, size_t n, int width);
void read_width(uint8_t *dst, const volatile void *src, size_t n, int width);
uint64_t compare(const char *what, const uint8_t *exp, const uint8_t *got,
		 size_t n);

/* the commands: exit status 0 iff everything they checked passed */
int cmd_check(void);		/* check.c */
int cmd_info(void);
int cmd_cross(void);
int cmd_matrix(bool refusals_only);	/* matrix.c */
int cmd_random(void);		/* random.c */
double now(void);		/* bench.c */
double copy_rate(void *dst, const void *src, size_t n);
int cmd_bench(void);
int sysfs_write(const char *path, const char *val);	/* lifecycle.c */
int pci_dir_of(int fd, char *out, size_t n);
int open_pci_dev(const char *dir, uint32_t old_minor, double secs);
int cmd_unplug(void);
int cmd_race(void);
int cmd_hold(long secs);
int cmd_faults(void);
int cmd_atlas(void);		/* atlas.c */

#endif
