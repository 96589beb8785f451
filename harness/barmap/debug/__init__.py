"""Debugging a guest: the session (from a frozen options object), its gdb script,
module placement, BTF, ELF, the interactive console.

May import: everything up to guest.
"""
