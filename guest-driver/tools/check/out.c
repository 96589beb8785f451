// SPDX-License-Identifier: GPL-2.0-only
#include "check.h"

/* ---- output: key=value lines or a JSON array of objects ---- */

static bool rec_open, json_any;
static char rec_note[512];

void out_begin(void)
{
	if (opt.json)
		printf("[\n");
}

void out_end(void)
{
	if (opt.json)
		printf("%s]\n", json_any ? "\n" : "");
}

void rec_begin(void)
{
	rec_open = false;
	rec_note[0] = 0;
	if (opt.json) {
		printf("%s  {", json_any ? ",\n" : "");
		json_any = true;
	}
}

static void rec_kv(const char *k, const char *v, bool quote)
{
	if (opt.json) {
		printf("%s", rec_open ? ", " : "");
		json_str(k);
		printf(": ");
		if (quote)
			json_str(v);
		else
			printf("%s", v);
	} else {
		printf("%s%s=%s", rec_open ? " " : "", k, v);
	}
	rec_open = true;
}

void rec_s(const char *k, const char *v)
{
	rec_kv(k, v, true);
}

void rec_u(const char *k, uint64_t v)
{
	char b[32];

	snprintf(b, sizeof(b), "%" PRIu64, v);
	rec_kv(k, b, false);
}

void rec_x(const char *k, uint64_t v)
{
	char b[32];

	snprintf(b, sizeof(b), "0x%" PRIx64, v);
	rec_kv(k, b, true);
}

void rec_f(const char *k, double v)
{
	char b[32];

	snprintf(b, sizeof(b), "%.1f", v);
	rec_kv(k, b, false);
}

void rec_notef(const char *fmt, ...)
{
	va_list ap;
	size_t n = strlen(rec_note);

	if (n && n < sizeof(rec_note) - 2) {
		strcat(rec_note, "; ");
		n += 2;
	}
	va_start(ap, fmt);
	vsnprintf(rec_note + n, sizeof(rec_note) - n, fmt, ap);
	va_end(ap);
}

/* ends a record; in text mode a bare word (ok/FAIL) may close the line */
void rec_end(const char *word)
{
	if (opt.json) {
		if (rec_note[0])
			rec_s("note", rec_note);
		if (word)
			rec_s("result", word);
		printf("}");
	} else {
		if (word)
			printf(" %s", word);
		printf("\n");
		if (rec_note[0])
			printf("  note: %s\n", rec_note);
	}
	fflush(stdout);
}

const char *errname(int e)
{
	switch (e) {
	case 0: return "0";
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case EIO: return "EIO";
	case ENXIO: return "ENXIO";
	case EBADF: return "EBADF";
	case EAGAIN: return "EAGAIN";
	case ENOMEM: return "ENOMEM";
	case EACCES: return "EACCES";
	case EFAULT: return "EFAULT";
	case EBUSY: return "EBUSY";
	case ENODEV: return "ENODEV";
	case EINVAL: return "EINVAL";
	case ENOTTY: return "ENOTTY";
	case ENOSPC: return "ENOSPC";
	case ENOSYS: return "ENOSYS";
	case EOVERFLOW: return "EOVERFLOW";
	case ETIMEDOUT: return "ETIMEDOUT";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	default: return "E?";
	}
}

