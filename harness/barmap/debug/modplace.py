"""A module's ``.ko`` linked at the addresses the kernel loaded it to, for gdb.

gdb can load a relocatable ``.ko`` with ``add-symbol-file KO TEXT -s SECTION ADDR...``,
but then has to apply the DWARF's relocations itself, and gdb 13 gets that wrong for
the modules of Linux 6.12: a function in ``.exit.text`` is placed as if it were in
``.text`` (``barmap_exit`` appears where ``barmap_mmap`` is).  ``ld`` does it right:
a linker script puts every section at its load address and the output is an ordinary
executable whose debug information already holds the final addresses, which gdb loads
with a plain ``add-symbol-file FILE``.  References to the kernel's symbols stay
unresolved (only the debug information matters; gdb reads the code from the guest).

Standard library only, and no other barmap module: the gdb script's module hook
loads this file by its path inside gdb's own Python.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from pathlib import Path

LD = "ld"


class PlaceError(Exception):
    pass


def linker_script(sections: Mapping[str, int]) -> str:
    """Each loaded section in an output section of its own, at its address."""
    lines = ["SECTIONS", "{"]
    for name, addr in sorted(sections.items(), key=lambda item: item[1]):
        if any(c.isspace() or c in "(){};" for c in name):
            continue  # not a section name a script can hold; gdb does without it
        lines.append(f"  {name} {addr:#x} : {{ *({name}) }}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def available() -> bool:
    return shutil.which(LD) is not None


def add_symbol_file_command(ko: Path, sections: Mapping[str, int], known: AbstractSet[str]) -> str:
    """``add-symbol-file KO TEXT -s SECTION ADDR...`` for the sections the ``.ko`` has
    (gdb then relocates the ``.ko`` itself)."""
    if ".text" not in sections:
        raise ValueError(f"{ko}: no .text address among {sorted(sections)}")
    rest = " ".join(
        f"-s {name} {addr:#x}"
        for name, addr in sorted(sections.items())
        if name != ".text" and name in known
    )
    return f"add-symbol-file {ko} {sections['.text']:#x} {rest}".rstrip()


def load_command(
    name: str,
    ko: Path,
    sections: Mapping[str, int],
    known: AbstractSet[str],
    placed_dir: Path | None,
) -> tuple[str, str]:
    """(the gdb command that loads module ``name``'s symbols at ``sections``, a note).

    The module linked at its addresses into ``placed_dir`` when ``ld`` can do it;
    else the ``.ko`` and its section addresses, with the reason in the note.  Only the
    sections the ``.ko`` has (``known``: its SHF_ALLOC ones) count.  The harness calls
    it for a module already loaded, the gdb script's hook for one loading now.
    """
    mine = {section: addr for section, addr in sections.items() if section in known}
    note = "no directory for the linked module"
    if placed_dir is not None and ".text" in mine:
        out = Path(placed_dir) / f"{name}-{mine['.text']:x}.elf"
        try:
            return f"add-symbol-file {place(ko, mine, out)}", ""
        except (PlaceError, OSError) as exc:
            note = f"{exc}; gdb relocates {ko} itself"
    return add_symbol_file_command(ko, sections, known), note


def place(ko: Path, sections: Mapping[str, int], out: Path) -> Path:
    """``out``: ``ko`` linked with each of ``sections`` at its address."""
    if ".text" not in sections:
        raise PlaceError(f"{ko}: no .text address among {sorted(sections)}")
    script = out.with_suffix(".ld")
    script.write_text(linker_script(sections))
    proc = subprocess.run(
        [LD, "-o", str(out), "-T", str(script), "-nostdlib", "--no-relax",
         "--unresolved-symbols=ignore-all", "--noinhibit-exec", str(ko)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if not out.is_file():
        raise PlaceError(f"ld could not place {ko}: {proc.stderr.strip()[-300:]}")
    return out
