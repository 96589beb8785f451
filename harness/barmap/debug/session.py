"""``barmap debug``: a guest with gdb's stub, the driver's symbols, and one command to attach.

Without ``--load`` or ``--break`` the guest stops at its first instruction (to
debug the boot).  With them it boots, and the session writes a gdb script
(``barmap.gdb`` in the run's log directory; ``barmap.debug.gdbscript``) that attaches,
loads the kernel's symbols when they are here (``make symbols``) and the
driver's at its load address, and sets the breakpoints:

* ``--load`` alone: the driver is loaded at once and its sections read from
  ``/sys/module/barmap/sections``;
* ``--break FUNC``: the driver is loaded only once gdb has attached, so that a
  breakpoint in its init or probe hits too; the script ends with ``continue``.

Either way a later ``insmod`` (a reload) is followed: the script's module hook
loads the symbols at the new address.  ``--tmux`` puts the console, gdb and the
QEMU monitor in one window.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from barmap.debug import gdbscript
from barmap.debug.btf import Btf, BtfError
from barmap.debug.elf import ElfError
from barmap.errors import BarmapError
from barmap.guest import checks
from barmap.guest.machine import Machine
from barmap.qemu.sessions import write_session

GDB_SCRIPT = "barmap.gdb"
READY_FILE = "gdb-attached"
DRIVER = "barmap"


def btf_of(kernel: Path, kenv_vmlinux: str, scratch: Path) -> Btf | None:
    """The booted kernel's BTF: from its ELF (``kernel`` itself, or kernel.env's
    VMLINUX), else from the vmlinux inside its bzImage; None when it has none."""
    from barmap.build import vmlinux

    candidates = [kernel, Path(kenv_vmlinux)] if kenv_vmlinux else [kernel]
    for path in candidates:
        try:
            return Btf.from_elf(path)
        except (BtfError, ElfError, OSError):
            continue
    out = scratch / "vmlinux-for-btf"
    try:
        vmlinux.extract(kernel, out)
        return Btf.from_elf(out)
    except Exception:  # an image this kernel's tools cannot unpack: no module hook
        return None
    finally:
        out.unlink(missing_ok=True)


def _kallsyms(vm: Machine, names: list[str]) -> dict[str, int]:
    pattern = "|".join(n.replace(".", "\\.") for n in names)
    status, out = vm.run(f"grep -E ' ({pattern})$' /proc/kallsyms")
    return gdbscript.parse_kallsyms(out) if status == 0 else {}


def _sections(vm: Machine, module: str) -> dict[str, int]:
    status, out = vm.run(
        f"cd /sys/module/{module}/sections && for f in .* *; do "
        f'[ -f "$f" ] && echo "$f $(cat "$f")"; done; cd /'
    )
    return gdbscript.parse_sections(out) if status == 0 else {}


def _load_when_attached(vm: Machine, ready: Path) -> None:
    """Type the insmod line on the console once gdb has run the script (a thread)."""

    def wait() -> None:
        while vm.is_running() and not ready.exists():
            time.sleep(0.2)
        if vm.is_running():
            vm.console.send(checks.insmod_command(vm) + "\n")

    threading.Thread(target=wait, name="barmap-load-when-attached", daemon=True).start()


@dataclass(frozen=True)
class DebugOptions:
    """What a debug session is asked for (the CLI's ``barmap debug`` flags, resolved)."""

    gdb_port: int = 1234
    breaks: tuple[str, ...] = ()
    suite: str | None = None
    kernel_symbols: bool = True  # give gdb the kernel's vmlinux when it is here
    driver_ko: Path | None = None  # the module the guest loads (its symbols for gdb)


def kernel_symbols(opts: DebugOptions) -> Path | None:
    """The booted kernel's vmlinux with debug info, unless the options say not to."""
    from barmap.build.symbols import symbols_vmlinux

    return symbols_vmlinux(opts.suite) if opts.kernel_symbols else None


def prepare(vm: Machine, opts: DebugOptions, log_dir: Path, kenv_vmlinux: str) -> Path:
    """Boot-time half of a ``--load``/``--break`` session: the gdb script, written."""
    from barmap.build.symbols import gdb_source_commands

    if opts.driver_ko is None:
        raise BarmapError("a debug session with the driver needs its module file")
    vmlinux = kernel_symbols(opts)
    modules = [gdbscript.ModuleFile(DRIVER, opts.driver_ko)]
    kernel_breaks = [b for b in opts.breaks if not any(b in m.functions for m in modules)]
    kallsyms = _kallsyms(vm, [gdbscript.MODULE_LOAD_FUNCTION, *kernel_breaks])
    btf = btf_of(vm.config.kernel, kenv_vmlinux, vm.rundir)
    loaded: dict[str, dict[str, int]] = {}
    # Breakpoints wait for the driver's load, which the gdb hook follows by the kernel's
    # struct module layout (BTF).  Without BTF the driver is loaded first and its symbols
    # placed from sysfs: what runs after the load still stops, its init and probe have run.
    defer = bool(opts.breaks) and btf is not None
    if not defer:
        checks.load_module(vm)
        loaded[DRIVER] = _sections(vm, DRIVER)
    session = gdbscript.Session(
        port=opts.gdb_port,
        modules=modules,
        loaded=loaded,
        layout=gdbscript.ModuleLayout.from_btf(btf) if btf is not None else None,
        kallsyms=kallsyms,
        vmlinux=vmlinux,
        source_commands=gdb_source_commands(opts.suite) if vmlinux else [],
        breaks=list(opts.breaks),
        ready_file=log_dir / READY_FILE,
        placed_dir=log_dir,
        run=bool(opts.breaks),
    )
    path = log_dir / GDB_SCRIPT
    path.write_text(gdbscript.script(session))
    _commands, notes = gdbscript.breakpoint_commands(session)
    for note in notes:
        print(f"barmap: break {note}", file=sys.stderr)
    if vmlinux is None:
        print(
            "barmap: no kernel symbols (kernel frames show as addresses): `make symbols` "
            "fetches them",
            file=sys.stderr,
        )
    if btf is None:
        print("barmap: this kernel has no BTF: a reloaded module's symbols are not followed",
              file=sys.stderr)  # fmt: skip
        if opts.breaks:
            print("barmap: so the driver is loaded before gdb attaches: its init and probe"
                  " have run when the breakpoints are set", file=sys.stderr)  # fmt: skip
    if defer:
        (log_dir / READY_FILE).unlink(missing_ok=True)
        _load_when_attached(vm, log_dir / READY_FILE)
    return path


def paused_script(opts: DebugOptions, log_dir: Path) -> Path:
    """The script of a session stopped at the first instruction: attach, kernel symbols."""
    from barmap.build.symbols import gdb_source_commands

    vmlinux = kernel_symbols(opts)
    session = gdbscript.Session(
        port=opts.gdb_port,
        vmlinux=vmlinux,
        source_commands=gdb_source_commands(opts.suite) if vmlinux else [],
        breaks=list(opts.breaks),
    )
    path = log_dir / GDB_SCRIPT
    path.write_text(gdbscript.script(session))
    return path


def gdb_command(script: Path) -> str:
    return f"gdb -q -x {shlex.quote(str(script))}"


def register(vm: Machine, name: str, log_dir: Path, command: str) -> None:
    """Describe the session for ``barmap monitor`` (session.json in its runtime directory)."""
    write_session(
        vm.rundir,
        name=name,
        harness_pid=os.getpid(),
        qemu_pid=vm.pid or 0,
        gdb_port=vm.config.gdb_port,
        log_dir=str(log_dir),
        command=command,
    )


# -- tmux ------------------------------------------------------------------


def in_tmux(argv: list[str], name: str) -> int:
    """Run this same ``barmap debug`` in a new tmux session: console, gdb, monitor panes.

    Inside tmux already, the panes open in the current window.
    """
    if shutil.which("tmux") is None:
        raise BarmapError("--tmux needs tmux (scripts/deps.sh installs it)")
    ready = Path(tempfile.mkdtemp(prefix="barmap-tmux-")) / "script-path"
    inner = [sys.executable, "-m", "barmap", *[a for a in argv if a != "--tmux"]]
    inner += ["--name", name, "--announce-script", str(ready)]
    me = shlex.join([sys.executable, "-m", "barmap"])
    gdb_pane = (
        f"while [ ! -s {shlex.quote(str(ready))} ]; do sleep 0.2; done; "
        f'gdb -q -x "$(cat {shlex.quote(str(ready))})"'
    )
    monitor_pane = (
        f"while [ ! -s {shlex.quote(str(ready))} ]; do sleep 0.2; done; {me} monitor {name}"
    )
    console = shlex.join(inner)
    if os.environ.get("TMUX"):
        subprocess.run(["tmux", "split-window", "-h", gdb_pane], check=True)
        subprocess.run(["tmux", "split-window", "-v", monitor_pane], check=True)
        subprocess.run(["tmux", "select-pane", "-L"], check=True)
        return subprocess.call(inner)
    session = f"barmap-{name}"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "200", "-y", "50", console],
                   check=True)  # fmt: skip
    subprocess.run(["tmux", "split-window", "-h", "-t", session, gdb_pane], check=True)
    subprocess.run(["tmux", "split-window", "-v", "-t", session, monitor_pane], check=True)
    subprocess.run(["tmux", "select-pane", "-t", f"{session}:0.0"], check=True)
    if not os.isatty(sys.stdin.fileno()):
        print(f"barmap: tmux session {session} (attach: tmux attach -t {session})")
        return 0
    return subprocess.call(["tmux", "attach-session", "-t", session])
