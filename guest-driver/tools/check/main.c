// SPDX-License-Identifier: GPL-2.0-only
/* barmap-check's command line: fills opt (opts.c), runs one command */
#include "check.h"

static uint64_t parse_size(const char *s)
{
	char *end;
	uint64_t v = strtoull(s, &end, 0);

	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	}
	if (*end) {
		fprintf(stderr, "bad size '%s'\n", s);
		exit(2);
	}
	return v;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: barmap-check [check|info|probe-refusals|hostile|cross|bench|unplug|race|faults|hold|atlas]\n"
		"  [--dev /dev/barmap0] [--strategy NAME,...|all] [--size N]\n"
		"  [--pattern offset,walk,55aa,random|all] [--width 8,16,32,64,memcpy|all]\n"
		"  [--sizes 1,1024,1025,page,whole|all] [--cache uc|wc] [--seed S]\n"
		"  [--random-ops N] [--count N] [--remover sysfs|host] [--ref BDF] [--json]\n"
		"  atlas: [--scenarios NAME,...|all] [--blockdev PATH]\n"
		"strategies:");
	for (size_t i = 0; i < n_strategies; i++)
		fprintf(stderr, " %s", strategies[i].name);
	fprintf(stderr, "\n");
	exit(2);
}

/* every name in a --strategy list must be a strategy: no silent skip */
static void check_strategy_list(const char *list)
{
	char buf[256], *save = NULL, *name;

	if (!strcmp(list, "all"))
		return;
	snprintf(buf, sizeof(buf), "%s", list);
	for (name = strtok_r(buf, ",", &save); name;
	     name = strtok_r(NULL, ",", &save)) {
		if (!strategy_named(name)) {
			fprintf(stderr, "barmap-check: unknown strategy '%s'\n",
				name);
			usage();
		}
	}
}

static long parse_count(const char *v)
{
	char *end;
	long n = strtol(v, &end, 0);

	if (*end || n < 0) {
		fprintf(stderr, "bad count '%s'\n", v);
		exit(2);
	}
	return n;
}

static int cmd_refusals(void)
{
	return cmd_matrix(true);
}

static int cmd_hostile(void)
{
	return cmd_matrix(false);
}

static int cmd_hold_opt(void)
{
	return cmd_hold(opt.size ? (long)opt.size : 5);
}

/* the commands; own_output: it writes JSON lines of its own (no record framing) */
static const struct command {
	const char *name;
	int (*run)(void);
	bool own_output;
} commands[] = {
	{ .name = "check", .run = cmd_check },
	{ .name = "info", .run = cmd_info },
	{ .name = "probe-refusals", .run = cmd_refusals },
	{ .name = "hostile", .run = cmd_hostile },
	{ .name = "cross", .run = cmd_cross },
	{ .name = "bench", .run = cmd_bench },
	{ .name = "random-ops", .run = cmd_random },
	{ .name = "unplug", .run = cmd_unplug },
	{ .name = "race", .run = cmd_race },
	{ .name = "faults", .run = cmd_faults },
	{ .name = "atlas", .run = cmd_atlas, .own_output = true },
	{ .name = "hold", .run = cmd_hold_opt },
	{ .name = NULL },
};

int main(int argc, char **argv)
{
	const char *cmd = "check";
	const struct command *c;
	int i, ret;

	page_size = sysconf(_SC_PAGESIZE);
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

#define ARG(name) (!strcmp(a, name) && v && (i++, 1))
		if (ARG("--dev")) {
			opt.dev = v;
		} else if (ARG("--strategy")) {
			opt.strategy = v;
		} else if (ARG("--size")) {
			opt.size = parse_size(v);
		} else if (ARG("--pattern") || ARG("--patterns")) {
			opt.patterns = v;
		} else if (ARG("--width") || ARG("--widths")) {
			opt.widths = v;
		} else if (ARG("--sizes")) {
			opt.sizes = v;
		} else if (ARG("--cache")) {
			if (strcmp(v, "uc") && strcmp(v, "wc"))
				usage();
			opt.cache = v;
		} else if (ARG("--seed")) {
			opt.seed = strtoull(v, NULL, 0);
			opt.seed_given = true;
		} else if (ARG("--random-ops")) {
			opt.count = parse_count(v);
			cmd = "random-ops";
		} else if (ARG("--remover")) {
			if (strcmp(v, "sysfs") && strcmp(v, "host"))
				usage();
			opt.remover = v;
		} else if (ARG("--scenarios")) {
			opt.scenarios = v;
		} else if (ARG("--blockdev")) {
			opt.blockdev = v;
		} else if (ARG("--ref")) {
			opt.ref = v;
		} else if (ARG("--count")) {
			opt.count = parse_count(v);
		} else if (!strcmp(a, "--json")) {
			opt.json = true;
		} else if (a[0] != '-') {
			cmd = a;
		} else {
			usage();
		}
#undef ARG
	}
	check_strategy_list(opt.strategy);
	if (!opt.seed_given)
		opt.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);

	for (c = commands; c->name && strcmp(c->name, cmd); c++)
		;
	if (!c->name)
		usage();
	if (!c->own_output)
		out_begin();
	ret = c->run();
	if (!c->own_output)
		out_end();
	return ret;
}
