"""A booted guest: the machine with its snapshots, console, crash markers, SSH with the
overlay, and the checks that drive the driver and its tools.

May import: the leaves, build, config, qemu (not qtest).
"""
