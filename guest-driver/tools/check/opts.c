// SPDX-License-Identifier: GPL-2.0-only
/*
 * What every command reads: the options (main.c parses them into opt) and
 * the page size.  Everything depends on this file, it on nothing else.
 */
#include "check.h"

struct options opt = {
	.dev = "/dev/barmap0",
	.strategy = "all",
	.patterns = "offset",
	.widths = "32",
	.cache = "uc",
	.scenarios = "all",
	.blockdev = "/dev/ram0",
};
long page_size;

/* word is in the comma-separated list (or the list is "all") */
bool list_has(const char *list, const char *word)
{
	size_t n = strlen(word);
	const char *p = list;

	if (!strcmp(list, "all"))
		return true;
	while ((p = strstr(p, word))) {
		if ((p == list || p[-1] == ',') && (p[n] == 0 || p[n] == ','))
			return true;
		p += n;
	}
	return false;
}
