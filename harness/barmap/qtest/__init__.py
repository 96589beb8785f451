"""The device without a guest: qtest's wire protocol, the qtest machine, PCI helpers.

May import: the leaves, build, config, qemu.
"""
