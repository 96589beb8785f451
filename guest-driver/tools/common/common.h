/* SPDX-License-Identifier: GPL-2.0-only */
/* What barmap-check and barmap-why both need: a JSON string, a small file's text. */
#ifndef BARMAP_TOOLS_COMMON_H
#define BARMAP_TOOLS_COMMON_H

#include <stddef.h>

/* s as a JSON string literal, on stdout */
void json_str(const char *s);
/* the text of a small file (a sysfs attribute), its first line only if first_line;
 * the length, or -errno */
int read_text(const char *path, char *buf, size_t n, int first_line);

#endif
