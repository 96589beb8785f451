# barmap: `make demo` and `make test` from a fresh clone do all the set-up.
#
# Knobs:
#   QEMU_SUITE=bookworm|trixie     which Debian release's QEMU source to build (7.2 / 10.0)
#   QEMU_FLAVOR=plain|asan         how QEMU is built: asan is ASan + UBSan (own build directory;
#                                  `make test-device QEMU_FLAVOR=asan`); `make fuzz` builds the
#                                  third, fuzz (clang + libFuzzer)
#   KERNEL_SUITE=bookworm|trixie   which Debian release's kernel to boot (6.1 / 6.12)
#   KERNEL_FLAVOR=distro|debug     debug: the suite's kernel source built with KASAN, lockdep,
#                                  UBSAN, KFENCE (scripts/kernel-debug.sh; slow the first time)
#   KDIR=/path/to/kernel/build     build the module against your own kernel tree instead
#   KERNEL=/path/to/bzImage        boot your own kernel image instead
#   BARMAP_CACHE=dir               where heavy artifacts live (the default: harness/barmap/build/paths.py)
#   ACCEL=auto|kvm|tcg             how the harness runs guests (auto probes KVM, falls back to TCG)
#   JOBS=auto|N|0                  pytest-xdist workers for `make test*` (auto: one per core;
#                                  0: serial, in this process)
#   BOOT=auto|pvh|bzimage          the distro kernel's ELF vmlinux via PVH (auto: when it has
#                                  the PVH note) or its compressed bzImage
#   BARMAP_CONTAINER=docker|podman every target in a Debian container (scripts/container.sh);
#                                  the default on a host that is not Debian (none: not there)
#   BARMAP_CONTAINER_SUITE=bookworm|trixie  that container's Debian release
#   GUEST_ARCH=x86_64|arm64        the guest's architecture: arm64 builds qemu-system-aarch64,
#                                  fetches Debian's arm64 kernel, cross-builds the module and
#                                  the tools, makes an arm64 initramfs (`make qemu kernel
#                                  image GUEST_ARCH=arm64`; scripts/boot-arm64.sh boots it;
#                                  its paths: scripts/paths.sh)

# On a host that is not Debian, or with BARMAP_CONTAINER set: the same make, with the same
# goals and variables, in a Debian container (scripts/container.sh), and nothing here.
HOST_OS := $(shell sed -n 's/^ID=//p' /etc/os-release 2>/dev/null | tr -d '"')
CONTAINER := $(if $(BARMAP_IN_CONTAINER),,$(filter-out none,$(or $(BARMAP_CONTAINER),$(if \
	$(filter-out debian,$(HOST_OS)),auto))))
ifeq ($(CONTAINER),)

comma := ,
ACCEL        ?= auto
BOOT         ?= auto
JOBS         ?= auto
# worksteal: an idle worker takes tests queued for a busy one (a few tests take
# 10-30 s, most well under one)
XDIST        := -n $(JOBS) $(if $(filter 0,$(JOBS)),,--dist worksteal)
PYTEST_ARGS  ?=

PYTHON   ?= python3
VENV     := .venv
VPY      := $(VENV)/bin/python

# Every path and default (cache, suites, where QEMU, kernel.env and the initramfs
# are) comes from harness/barmap/build/paths.py, as NAME:=value words: BARMAP_CACHE,
# QEMU_SUITE, KERNEL_SUITE, QEMU_BIN, KENV, OUT, INITRD.  Knobs given here win.
PATHS_ARGS := $(if $(BARMAP_CACHE),--cache '$(BARMAP_CACHE)') \
	$(if $(QEMU_SUITE),--qemu-suite '$(QEMU_SUITE)') \
	$(if $(KERNEL_SUITE),--kernel-suite '$(KERNEL_SUITE)') \
	$(if $(QEMU_FLAVOR),--qemu-flavor '$(QEMU_FLAVOR)') \
	$(if $(KERNEL_FLAVOR),--kernel-flavor '$(KERNEL_FLAVOR)') \
	$(if $(GUEST_ARCH),--guest-arch '$(GUEST_ARCH)')
$(foreach v,$(shell $(PYTHON) harness/barmap/build/paths.py --make $(PATHS_ARGS)),$(eval $(v)))
ifeq ($(KENV),)
$(error harness/barmap/build/paths.py gave no paths (see its message above))
endif
SUITES_LIST := $(subst $(comma), ,$(SUITES_COMMA))
# arm64 (its paths beside x86's, from paths.py): the cross toolchain
export GUEST_ARCH
export BARMAP_GUEST_ARCH := $(GUEST_ARCH)
ifeq ($(GUEST_ARCH),arm64)
CROSS := ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- CC=aarch64-linux-gnu-gcc KHOSTCC=gcc \
	TOOLBIN=$(OUT)/tools
STRIP := aarch64-linux-gnu-strip
endif
ifeq ($(QEMU_FLAVOR),fuzz)
$(error QEMU_FLAVOR=fuzz is the fuzzer, not a QEMU to run tests on: use `make fuzz`)
endif

export BARMAP_CACHE

# What the harness boots; tests and the CLI read these.
export BARMAP_QEMU  := $(QEMU_BIN)
export BARMAP_KENV  := $(KENV)
export BARMAP_INITRD := $(INITRD)
export BARMAP_ACCEL := $(ACCEL)
export BARMAP_BOOT  := $(BOOT)
export BARMAP_KERNEL_FLAVOR := $(KERNEL_FLAVOR)
# the suites too, for what finds its files by suite (the kernel's debug symbols)
export BARMAP_KERNEL_SUITE := $(KERNEL_SUITE)
export BARMAP_QEMU_SUITE := $(QEMU_SUITE)
ifneq ($(KERNEL),)
export BARMAP_KERNEL := $(abspath $(KERNEL))
endif

.PHONY: all deps venv qemu kernel driver image demo test test-device test-guest test-unit \
	bench atlas fuzz lint clean symbols

all: qemu image venv

deps:
	@scripts/deps.sh

$(VENV)/.stamp: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -e '.[dev]'
	@touch $@

venv: deps $(VENV)/.stamp

qemu: deps
	$(if $(CROSS),scripts/deps.sh arm64)
	scripts/qemu.sh $(QEMU_SUITE) $(QEMU_FLAVOR)

kernel: deps
ifeq ($(KDIR),)
	scripts/kernel.sh $(KERNEL_SUITE) $(KERNEL_FLAVOR)
endif

# The guest kernel's debug symbols for gdb (barmap debug), on request only, never in
# `make test`: the vmlinux of linux-image-KVER-dbg (an ~860 MB download, ~630 MB kept) in
# the kernel cache's symbols/, resumed if interrupted; SOURCE=1 adds the kernel source.
symbols: kernel venv
	$(VPY) -m barmap.build.symbols --suite $(KERNEL_SUITE) \
		$(if $(BARMAP_CACHE),--cache '$(BARMAP_CACHE)') $(if $(SOURCE),--source)

# The module and the static guest tools, against the cached kernel's headers or KDIR=.
# kbuild builds in guest-driver/; the products for this kernel are copied to $(OUT).
driver: kernel
	$(if $(CROSS),scripts/deps.sh arm64)
	$(MAKE) -C guest-driver KERNEL=$(KENV) $(if $(KDIR),KDIR=$(KDIR)) $(CROSS)
	mkdir -p $(OUT)/tools
	cp guest-driver/barmap.ko $(OUT)/barmap.ko
	$(if $(CROSS),,cp guest-driver/tools/barmap-check guest-driver/tools/barmap-why $(OUT)/tools/)

image: driver
	$(if $(CROSS),images/arm64-userland.sh $(KERNEL_SUITE) >/dev/null)
	. $(KENV) && $(if $(CROSS),STRIP=$(STRIP) USERLAND=$$(images/arm64-userland.sh $(KERNEL_SUITE))) \
		images/initramfs.sh $(INITRD) $(OUT)/barmap.ko $(OUT)/tools $(if $(KERNEL),,$$MODDIR)

demo: all
	$(VENV)/bin/barmap demo

test: all
	$(VENV)/bin/pytest $(XDIST) $(PYTEST_ARGS)

test-device: qemu venv
	$(VENV)/bin/pytest tests/device $(XDIST) $(PYTEST_ARGS)

test-guest: all
	$(VENV)/bin/pytest tests/guest $(XDIST) $(PYTEST_ARGS)

test-unit: venv
	$(VENV)/bin/pytest tests/unit $(XDIST) $(PYTEST_ARGS)

bench: all
	$(VENV)/bin/barmap bench --json build/bench.json

# The mapping atlas: every strategy through one scenario matrix on both kernels (their
# images built first), build/atlas.{json,md,html} and the generated docs/atlas.md;
# CYCLES race cycles per removal path (default 200).  Measured, never a timed test.
ATLAS_SUITES ?= $(SUITES_LIST)
atlas: qemu venv
	$(foreach s,$(ATLAS_SUITES),$(MAKE) image KERNEL_SUITE=$(s) &&) true
	$(VENV)/bin/barmap atlas --suites $(subst $(eval) ,$(comma),$(ATLAS_SUITES)) \
		--cycles $(or $(CYCLES),200) --docs docs/atlas.md

# QEMU's generic-fuzz (libFuzzer) against barmap on an ASan + UBSan build; TARGET, RUNS,
# TIME, JOBS: see scripts/fuzz.sh.  Corpus and crash reproducers in build/fuzz/.
fuzz:
	scripts/fuzz.sh $(QEMU_SUITE)

# ruff on the harness and tests; shellcheck on the scripts, the guest init and the
# workflow's steps; the workflow linters (schema, zizmor, yamllint); checkpatch, W=1 and
# sparse (C=1) on the driver
lint: venv kernel
	$(VENV)/bin/ruff check harness tests examples scripts
	$(VENV)/bin/ruff format --check harness tests examples scripts
	shellcheck scripts/*.sh images/initramfs.sh images/arm64-userland.sh guest-driver/*.sh .ci/run
	shellcheck -s sh images/init
	$(VENV)/bin/check-jsonschema -q --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(VENV)/bin/check-jsonschema -q --builtin-schema vendor.github-actions action.yml
	$(VENV)/bin/zizmor -q --offline --config .github/zizmor.yml .github/workflows action.yml
	$(VENV)/bin/yamllint -s .yamllint .github action.yml
	$(VPY) scripts/shellcheck-steps.py action.yml .github/workflows/*.yml
	$(MAKE) -C guest-driver checkpatch
	$(MAKE) -C guest-driver KERNEL=$(KENV) $(if $(KDIR),KDIR=$(KDIR)) check
ifeq ($(KDIR),)
	# W=1 and sparse on the other kernel too: its version switches compile there
	$(foreach s,$(filter-out $(KERNEL_SUITE),$(SUITES_LIST)),scripts/kernel.sh $(s) distro && \
		$(MAKE) -C guest-driver KERNEL=$(s) check &&) true
endif

clean:
	rm -rf build
	$(MAKE) -C guest-driver clean KERNEL=$(KENV) $(if $(KDIR),KDIR=$(KDIR))

else
# (act stays on the host: it makes containers of its own)
goals := $(if $(MAKECMDGOALS),$(filter-out act,$(MAKECMDGOALS)),all)
.PHONY: $(goals)
ifneq ($(goals),)
$(firstword $(goals)):
	@scripts/container.sh make $(goals)
$(filter-out $(firstword $(goals)),$(goals)):
	@:
endif
endif

# A job of .github/workflows/ci.yml under act, in Docker (scripts/act-local.sh, docs/ci.md):
#   make act JOB=test MATRIX='qemu:trixie kernel:trixie host:trixie' [COLD=1]
.PHONY: act
act:
	scripts/act-local.sh $(if $(COLD),--cold) $(JOB) $(MATRIX)
