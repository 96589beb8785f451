// SPDX-License-Identifier: GPL-2.0-only
#include "check.h"

uint64_t rng_state;

uint64_t rng(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

uint64_t rng_below(uint64_t n)
{
	return n ? rng() % n : 0;
}

/* ---- patterns and access widths ---- */

const char *const all_patterns[4] = { "offset", "walk", "55aa",
					    "random" };
const int all_widths[5] = { 8, 16, 32, 64, 0 };	/* 0: memcpy */

void fill_pattern(uint8_t *p, size_t n, const char *pat, uint64_t seed)
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

void write_width(volatile void *dst, const uint8_t *src, size_t n,
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

void read_width(uint8_t *dst, const volatile void *src, size_t n,
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
uint64_t compare(const char *what, const uint8_t *exp,
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

