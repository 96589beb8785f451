"""One QEMU process and nothing about the guest: run dir, launcher, command line,
accelerator choice, QMP, HMP and the session registry.

May import: the leaves, build, config.
"""
