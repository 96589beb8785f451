"""barmap.debug.gdbscript: the gdb script of a debug session, from a module built here."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from barmap.debug import gdbscript
from barmap.debug.gdbscript import ModuleFile, ModuleLayout, Session

LAYOUT = ModuleLayout(name=24, sect_attrs=584, nsections=40, attrs=48, attr_size=72,
                      attr_name=0, attr_address=64)  # fmt: skip


@pytest.fixture(scope="module")
def module(tmp_path_factory: pytest.TempPathFactory) -> ModuleFile:
    """A relocatable object laid out like a module: init code in .init.text."""
    if shutil.which("cc") is None:
        pytest.skip("no C compiler")
    tmp = tmp_path_factory.mktemp("ko")
    src = tmp / "demo.c"
    src.write_text(
        textwrap.dedent("""
        __attribute__((section(".init.text"))) int demo_init(void) { return 0; }
        int demo_mmap(int x) { return x + 1; }
        int demo_data = 7;
    """)
    )
    ko = tmp / "demo.ko"
    subprocess.run(["cc", "-g", "-c", "-o", str(ko), str(src)], check=True)
    return ModuleFile("demo", ko)


def test_a_loaded_module_gets_its_sections_the_ko_has(module: ModuleFile) -> None:
    sections = {".text": 0xFFFFFFFFC0200000, ".data": 0xFFFFFFFFC0204000,
                ".init.text": 0xFFFFFFFFC0207000, "__jump_table": 0xFFFFFFFFC0205000}  # fmt: skip
    text = gdbscript.script(Session(port=4321, modules=[module], loaded={"demo": sections}))
    line = next(ln for ln in text.splitlines() if ln.startswith("add-symbol-file"))
    assert line.startswith(f"add-symbol-file {module.ko} 0xffffffffc0200000 ")
    assert "-s .data 0xffffffffc0204000" in line and "-s .init.text 0xffffffffc0207000" in line
    assert "__jump_table" not in line  # not a section of this .ko: gdb would complain
    lines = text.splitlines()
    assert lines.index("target remote 127.0.0.1:4321") < lines.index(line)
    assert "set architecture i386:x86-64" in lines  # no vmlinux: gdb is told the machine


def test_breakpoints_init_code_gets_a_hardware_one(module: ModuleFile) -> None:
    session = Session(port=1, modules=[module], kallsyms={"do_sys_open": 0xFFFFFFFF81234560},
                      breaks=["demo_init", "demo_mmap", "do_sys_open", "nowhere"])  # fmt: skip
    commands, notes = gdbscript.breakpoint_commands(session)
    assert commands == ["hbreak demo_init", "break demo_mmap", "break *0xffffffff81234560",
                        "break nowhere"]  # fmt: skip
    assert any("nowhere" in n and "pending" in n for n in notes)
    # with the kernel's symbols, kernel functions go by name
    session.vmlinux = Path("/cache/vmlinux-dbg")
    commands, _ = gdbscript.breakpoint_commands(session)
    assert commands[2] == "break do_sys_open"


def test_the_module_hook_is_armed_and_is_valid_python(module: ModuleFile, tmp_path: Path) -> None:
    ready = tmp_path / "attached"
    session = Session(port=1, modules=[module], layout=LAYOUT,
                      kallsyms={"do_init_module": 0xFFFFFFFF81149360}, breaks=["demo_init"],
                      ready_file=ready, run=True)  # fmt: skip
    text = gdbscript.script(session)
    lines = text.splitlines()
    hook = "\n".join(lines[lines.index("python") + 1 : lines.index("end")])
    compile(hook, "hook", "exec")  # gdb runs it; here it must at least be Python
    assert "BarmapModuleLoad('*0xffffffff81149360', internal=True)" in hook
    assert '"sect_attrs": 584' in hook
    # the breakpoints come after the hook (pending, they resolve when it loads the module),
    # then the harness is told, then the guest runs
    assert lines[-3:] == ["hbreak demo_init",
                          f"python import pathlib; pathlib.Path({str(ready)!r}).touch()",
                          "continue"]  # fmt: skip


def test_no_hook_without_the_load_function_or_a_layout(module: ModuleFile) -> None:
    assert "python" not in gdbscript.script(Session(port=1, modules=[module], layout=LAYOUT))
    kallsyms = {"do_init_module": 1}
    bare = gdbscript.script(Session(port=1, modules=[module], kallsyms=kallsyms))
    assert "BarmapModuleLoad" not in bare
    # the kernel's symbols name the function themselves
    named = Session(port=1, modules=[module], layout=LAYOUT, vmlinux=Path("/v"))
    assert "BarmapModuleLoad('do_init_module'" in gdbscript.script(named)


def test_listings_from_the_guest() -> None:
    listing = ".text 0xffffffffc020e000\n.bss 0xffffffffc02146c0\njunk\n"
    assert gdbscript.parse_sections(listing) == {".text": 0xFFFFFFFFC020E000,
                                                 ".bss": 0xFFFFFFFFC02146C0}  # fmt: skip
    kallsyms = "ffffffff81149360 t do_init_module\nffffffff81a0b3e3 t do_init_module.cold\n"
    want = {"do_init_module": 0xFFFFFFFF81149360, "do_init_module.cold": 0xFFFFFFFF81A0B3E3}
    assert gdbscript.parse_kallsyms(kallsyms) == want
    with pytest.raises(ValueError, match=r"no \.text"):
        gdbscript.modplace.add_symbol_file_command(Path("m.ko"), {".data": 1}, {".data"})


def test_a_loaded_module_is_linked_at_its_addresses(module: ModuleFile, tmp_path: Path) -> None:
    """What gdb reads puts every function in its own section's place (modplace, ld)."""
    if not gdbscript.modplace.available() or shutil.which("gdb") is None:
        pytest.skip("needs ld (binutils) and gdb")
    sections = {".text": 0xFFFFFFFFC0200000, ".init.text": 0xFFFFFFFFC0207000,
                ".data": 0xFFFFFFFFC0204000}  # fmt: skip
    text = gdbscript.script(
        Session(port=1, modules=[module], loaded={"demo": sections}, placed_dir=tmp_path)
    )
    line = next(ln for ln in text.splitlines() if ln.startswith("add-symbol-file"))
    placed = Path(line.split()[1])
    assert placed.parent == tmp_path and placed.is_file() and len(line.split()) == 2
    out = subprocess.run(
        ["gdb", "-batch", "-nx", "-ex", f"add-symbol-file {placed}", "-ex", "p &demo_init",
         "-ex", "p &demo_mmap", "-ex", "p &demo_data"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "0xffffffffc0207000 <demo_init>" in out
    assert "0xffffffffc0200000 <demo_mmap>" in out
    assert "0xffffffffc0204000 <demo_data>" in out
