"""The gdb script of a ``barmap debug`` session: attach, symbols, breakpoints.

A kernel module's code lands wherever the module loader puts it, so gdb needs
its section addresses.  For a module that is already loaded they come from
``/sys/module/NAME/sections`` (read by the harness on the console).  For one
that is loaded later, the script arms a breakpoint on the kernel's
``do_init_module(struct module *mod)``, where the sections are laid out but the
module's init has not run: a small gdb Python hook reads the module's name and
section table from guest memory (struct offsets from the kernel's own BTF,
``barmap.debug.btf``: the same for any kernel the session boots), loads the module's
symbols there and lets the guest go on; pending breakpoints in the module
(``barmap_init``, ``barmap_probe``...) resolve at that moment, so they hit.
A reloaded module's symbols move with it.

Breakpoints in a module's init code are hardware breakpoints: that memory is
freed once init returns, and a software breakpoint's saved byte would later be
written back into whatever reuses it.

Kernel symbols: the kernel's ``vmlinux`` with debug info when there is one
(``make symbols``: Debian's ``-dbg`` package); without it, kernel functions a
breakpoint names are found in the guest's ``/proc/kallsyms``.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from barmap.debug import elf, modplace
from barmap.debug.btf import Btf

# Where the kernel has laid a new module out and not yet run its init.
MODULE_LOAD_FUNCTION = "do_init_module"
# Sections of a module that exist only while its init runs.
INIT_SECTION_PREFIX = ".init"
MODULE_NAME_LEN = 56  # include/linux/module.h (MAX_PARAM_PREFIX_LEN)
SHF_ALLOC = 0x2
MODPLACE = Path(modplace.__file__).resolve()


@dataclass(frozen=True)
class ModuleLayout:
    """Byte offsets the hook reads a ``struct module`` and its section table with."""

    name: int
    sect_attrs: int
    nsections: int
    attrs: int
    attr_size: int
    attr_name: int
    attr_address: int

    @classmethod
    def from_btf(cls, btf: Btf) -> ModuleLayout:
        return cls(
            name=btf.offsetof("module", "name"),
            sect_attrs=btf.offsetof("module", "sect_attrs"),
            nsections=btf.offsetof("module_sect_attrs", "nsections"),
            attrs=btf.offsetof("module_sect_attrs", "attrs"),
            attr_size=btf.sizeof("module_sect_attr"),
            attr_name=btf.offsetof("module_sect_attr", "battr.attr.name"),
            attr_address=btf.offsetof("module_sect_attr", "address"),
        )


@dataclass(frozen=True)
class ModuleFile:
    """A module gdb should know: its name in the kernel and its ``.ko`` with debug info."""

    name: str
    ko: Path

    @cached_property
    def _symbols(self) -> list[elf.Symbol]:
        return elf.symbols(self.ko)

    @cached_property
    def section_names(self) -> frozenset[str]:
        """The sections the module loader puts in memory (SHF_ALLOC)."""
        return frozenset(s.name for s in elf.sections(self.ko) if s.name and s.flags & SHF_ALLOC)

    @cached_property
    def init_functions(self) -> frozenset[str]:
        return frozenset(
            s.name
            for s in self._symbols
            if s.is_function and s.section.startswith(INIT_SECTION_PREFIX)
        )

    @cached_property
    def functions(self) -> frozenset[str]:
        return frozenset(s.name for s in self._symbols if s.is_function)


def parse_sections(listing: str) -> dict[str, int]:
    """``NAME ADDRESS`` lines (the guest's ``/sys/module/M/sections``) into a dict."""
    out: dict[str, int] = {}
    for line in listing.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].startswith("0x"):
            out[parts[0]] = int(parts[1], 16)
    return out


def parse_kallsyms(listing: str) -> dict[str, int]:
    """``ADDRESS TYPE NAME [module]`` lines into name -> address (the first of each name)."""
    out: dict[str, int] = {}
    for line in listing.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            try:
                out.setdefault(parts[2], int(parts[0], 16))
            except ValueError:
                continue
    return out


@dataclass
class Session:
    """Everything the script is made from."""

    port: int
    modules: Sequence[ModuleFile] = ()
    loaded: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # name -> sections
    layout: ModuleLayout | None = None
    kallsyms: Mapping[str, int] = field(default_factory=dict)
    vmlinux: Path | None = None  # the kernel with debug info, when there is one
    source_commands: Sequence[str] = ()  # `directory SRC`... (barmap.build.symbols)
    breaks: Sequence[str] = ()
    ready_file: Path | None = None  # touched once the script has run (the harness waits)
    placed_dir: Path | None = None  # where modules linked at their addresses go (modplace)
    run: bool = False  # end with `continue`


def breakpoint_commands(session: Session) -> tuple[list[str], list[str]]:
    """(gdb commands, notes for the user) for the session's ``--break`` names."""
    commands, notes = [], []
    module_funcs = {m.name: m.functions for m in session.modules}
    init_funcs = set().union(*(m.init_functions for m in session.modules))
    for name in session.breaks:
        if any(name in funcs for funcs in module_funcs.values()):
            kind = "hbreak" if name in init_funcs else "break"
            commands.append(f"{kind} {name}")
        elif session.vmlinux is not None:
            commands.append(f"break {name}")
        elif name in session.kallsyms:
            commands.append(f"break *{session.kallsyms[name]:#x}")
            notes.append(f"{name}: at {session.kallsyms[name]:#x} (from /proc/kallsyms)")
        else:
            commands.append(f"break {name}")
            notes.append(f"{name}: not in the modules or /proc/kallsyms; left pending")
    return commands, notes


_HOOK = '''
import importlib.util
import pathlib

import gdb

BARMAP_MODULES = {modules}
BARMAP_KO_SECTIONS = {ko_sections}
BARMAP_LAYOUT = {layout}
BARMAP_PLACED_DIR = {placed_dir!r}
_barmap_loaded = {{}}
_barmap_spec = importlib.util.spec_from_file_location("barmap_modplace", {modplace!r})
_barmap_modplace = importlib.util.module_from_spec(_barmap_spec)
_barmap_spec.loader.exec_module(_barmap_modplace)


def _barmap_mem(addr, size):
    return bytes(gdb.selected_inferior().read_memory(addr, size))


def _barmap_u(addr, size):
    return int.from_bytes(_barmap_mem(addr, size), "little")


def _barmap_cstr(addr, size=64):
    return _barmap_mem(addr, size).split(b"\\0")[0].decode("utf-8", "replace")


def barmap_add_module(name, sections):
    """Load NAME's symbols at SECTIONS (name -> address); drop an older copy first."""
    ko = BARMAP_MODULES[name]
    old = _barmap_loaded.pop(name, None)
    if old is not None:
        gdb.execute("remove-symbol-file -a %#x" % old, to_string=True)
    text = sections[".text"]
    command, note = _barmap_modplace.load_command(
        name, pathlib.Path(ko), sections, set(BARMAP_KO_SECTIONS[name]),
        pathlib.Path(BARMAP_PLACED_DIR))
    if note:
        gdb.write("barmap: %s\\n" % note)
    gdb.execute(command, to_string=True)
    _barmap_loaded[name] = text
    gdb.write("barmap: symbols of %s (%s) at .text %#x\\n" % (name, ko, text))


class BarmapModuleLoad(gdb.Breakpoint):
    """Stops in do_init_module(mod) only long enough to load a watched module's symbols."""

    def stop(self):
        L = BARMAP_LAYOUT
        mod = int(gdb.parse_and_eval("$rdi")) & 0xFFFFFFFFFFFFFFFF
        name = _barmap_cstr(mod + L["name"], {name_len})
        if name not in BARMAP_MODULES:
            return False
        attrs = _barmap_u(mod + L["sect_attrs"], 8)
        sections = {{}}
        for i in range(_barmap_u(attrs + L["nsections"], 4)):
            entry = attrs + L["attrs"] + i * L["attr_size"]
            section = _barmap_cstr(_barmap_u(entry + L["attr_name"], 8))
            sections[section] = _barmap_u(entry + L["attr_address"], 8)
        barmap_add_module(name, sections)
        return False


BarmapModuleLoad({spec!r}, internal=True)
'''


def script(session: Session) -> str:
    """The gdb script text (``gdb -q -x FILE``)."""
    lines = [
        "# written by `barmap debug`: attach, symbols, breakpoints",
        "set pagination off",
        "set confirm off",
        "set breakpoint pending on",
    ]
    if session.vmlinux is not None:
        lines.append(f"file {session.vmlinux}")
    else:
        lines.append("set architecture i386:x86-64")
    lines += session.source_commands
    lines.append(f"target remote 127.0.0.1:{session.port}")
    known = {m.name: m.section_names for m in session.modules}
    for m in session.modules:
        if m.name in session.loaded:
            command, _note = modplace.load_command(
                m.name, m.ko, session.loaded[m.name], known[m.name], session.placed_dir
            )
            lines.append(command)
    hook_spec = ""
    if MODULE_LOAD_FUNCTION in session.kallsyms:
        hook_spec = f"*{session.kallsyms[MODULE_LOAD_FUNCTION]:#x}"
    elif session.vmlinux is not None:
        hook_spec = MODULE_LOAD_FUNCTION
    if session.modules and session.layout is not None and hook_spec:
        hook = _HOOK.format(
            modules=json.dumps({m.name: str(m.ko) for m in session.modules}),
            ko_sections=json.dumps({n: sorted(s) for n, s in known.items()}),
            layout=json.dumps(session.layout.__dict__),
            name_len=MODULE_NAME_LEN,
            spec=hook_spec,
            placed_dir=str(session.placed_dir or tempfile.gettempdir()),
            modplace=str(MODPLACE),
        )
        lines += ["python", hook.strip("\n"), "end"]
        # a module loaded before the script ran is known to the hook too (reloads move it)
        for m in session.modules:
            if m.name in session.loaded:
                sections = dict(session.loaded[m.name])
                lines.append(f"python _barmap_loaded[{m.name!r}] = {sections['.text']:#x}")
    commands, _notes = breakpoint_commands(session)
    lines += commands
    if session.ready_file is not None:
        lines.append(f"python import pathlib; pathlib.Path({str(session.ready_file)!r}).touch()")
    if session.run:
        lines.append("continue")
    return "\n".join(lines) + "\n"
