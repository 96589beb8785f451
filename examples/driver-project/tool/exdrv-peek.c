// SPDX-License-Identifier: GPL-2.0-only
/* exdrv-peek: writes an offset pattern through /dev/exdrv's mapping, reads it back. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	size_t len = argc > 1 ? strtoul(argv[1], NULL, 0) : 1 << 20;
	uint32_t seed = argc > 2 ? strtoul(argv[2], NULL, 0) : 0x5eed1234;
	int fd = open("/dev/exdrv", O_RDWR);
	volatile uint32_t *p;
	size_t bad = 0;

	if (fd < 0) {
		perror("exdrv-peek: /dev/exdrv");
		return 2;
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		perror("exdrv-peek: mmap");
		return 2;
	}
	for (size_t i = 0; i < len / 4; i++)
		p[i] = (uint32_t)(i * 4) ^ seed;	/* what barmap's pattern is */
	for (size_t i = 0; i < len / 4; i++)
		bad += p[i] != ((uint32_t)(i * 4) ^ seed);
	printf("bytes=%zu mismatches=%zu %s\n", len, bad, bad ? "FAIL" : "ok");
	return bad ? 1 : 0;
}
