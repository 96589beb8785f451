"""Interactive debugging as a user does it, over ptys: gdb in the driver, the device's
trace events, the QEMU monitor (docs/debugging.md)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from barmap.build.paths import timeout_scale
from barmap.build.symbols import symbols_vmlinux
from barmap.config import MachineConfig

pytestmark = [
    pytest.mark.guest,
    pytest.mark.x86_only(
        "the host's gdb debugs x86_64 guests (gdb-multiarch is not installed here)"
    ),
]

PROMPT = "barmap# "
# stepi after stepi in barmap_init and what it calls (each moves %rip, or %rcx for one
# iteration of a string instruction)
STEPS = 20


def _args(config: MachineConfig) -> list[str]:
    return ["--qemu", str(config.qemu), "--kernel", str(config.kernel),
            "--initrd", str(config.initrd), "--accel", config.accel]  # fmt: skip


def _gdb(command: str, transcript: Path) -> pexpect.spawn:
    """The printed gdb command, run on a terminal without colours (plain text to match);
    what it printed is kept in ``transcript``."""
    gdb = pexpect.spawn(command, encoding="utf-8", timeout=120 * timeout_scale(),
                        env={**os.environ, "TERM": "dumb"})  # fmt: skip
    gdb.logfile_read = transcript.open("w")
    return gdb


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn(*args: str, timeout: float = 120) -> pexpect.spawn:
    return pexpect.spawn(
        sys.executable, ["-m", "barmap", *args], encoding="utf-8",
        timeout=timeout * timeout_scale(), dimensions=(50, 200),
    )  # fmt: skip


@pytest.fixture
def needs_gdb() -> None:
    if shutil.which("gdb") is None:
        pytest.skip("gdb is not installed (scripts/deps.sh installs it)")


@pytest.fixture
def children() -> Iterator[list[pexpect.spawn]]:
    spawned: list[pexpect.spawn] = []
    yield spawned
    for child in spawned:
        child.close(force=True)


def _quit(console: pexpect.spawn) -> None:
    console.send("\x1d")
    console.expect(pexpect.EOF, timeout=30)


@pytest.mark.parametrize("kernel_symbols", [False, True], ids=["driver-symbols", "kernel-too"])
def test_gdb_stops_in_barmap_mmap_with_the_driver_source_line(
    barmap_config: MachineConfig,
    tmp_path: Path,
    needs_gdb: None,
    children: list[pexpect.spawn],
    kernel_symbols: bool,
) -> None:
    if kernel_symbols and symbols_vmlinux() is None:
        pytest.skip("no kernel debug symbols in the cache (make symbols fetches them, ~860 MB)")
    port = _port()
    which = [] if kernel_symbols else ["--no-kernel-symbols"]
    console = _spawn("debug", "--break", "barmap_mmap", "--gdb-port", str(port), *which,
                     *_args(barmap_config), "--log-dir", str(tmp_path))  # fmt: skip
    children.append(console)
    console.expect(r"attach with:\s+(gdb -q -x \S+)")
    command = console.match.group(1)
    assert (tmp_path / "barmap.gdb").is_file()
    gdb = _gdb(command, tmp_path / "gdb.log")
    children.append(gdb)
    # the script loads the driver's symbols where the kernel put it, then continues
    gdb.expect(r"barmap: symbols of barmap \(\S+barmap\.ko\) at \.text 0x[0-9a-f]+")
    console.expect(PROMPT)
    console.send("ls /dev/barmap0 && barmap-check --strategy bar\r")
    gdb.expect(r"Breakpoint 1(\.\d+)?, (0x[0-9a-f]+ in )?barmap_mmap \(")
    gdb.expect(r"\(gdb\) ")
    gdb.sendline("bt")
    gdb.expect(r"#0 +(0x[0-9a-f]+ in )?barmap_mmap \([^)]*\)\s+at \S*guest-driver/barmap\.c:(\d+)")
    line = int(gdb.match.group(2))
    source = Path(__file__).parents[2] / "guest-driver" / "barmap.c"
    function = source.read_text().splitlines()
    # the line gdb names is inside barmap_mmap's body
    opening = next(i for i, t in enumerate(function, 1) if re.match(r"static int barmap_mmap\(", t))
    assert opening <= line < opening + 80, (opening, line)
    if kernel_symbols:
        # the callers are the kernel's mmap code, with their source lines (relative paths
        # in Debian's -dbg vmlinux, absolute in the debug kernel built here)
        gdb.expect(r"#[1-4] +(0x[0-9a-f]+ in )?\w+ \([^)]*\)\s+at (\S*/)?mm/\S+\.c:\d+")
    gdb.expect(r"\(gdb\) ")
    gdb.sendline("continue")
    console.expect(r"verdict=PASS")
    gdb.sendcontrol("c")
    gdb.expect(r"\(gdb\) ")
    gdb.sendline("detach")
    gdb.sendline("quit")
    gdb.expect(pexpect.EOF)
    console.send("\r")
    console.expect(PROMPT)
    _quit(console)


def test_without_btf_the_driver_is_loaded_first_and_its_mmap_still_stops(
    barmap_config: MachineConfig, tmp_path: Path, needs_gdb: None, children: list[pexpect.spawn]
) -> None:
    """A kernel whose BTF cannot be read (its magic cleared: the kernel itself then has none
    either) gives the module hook no struct module layout.  The session says so, loads
    the driver before gdb attaches, and a breakpoint in what runs later still stops."""
    from dataclasses import replace

    from barmap.debug import elf
    from barmap.qemu.accel import resolve_accel

    try:
        btf = next(s for s in elf.sections(barmap_config.kernel) if s.name == ".BTF")
    except (elf.ElfError, OSError, StopIteration):
        pytest.skip("the booted kernel is not an ELF vmlinux with BTF to take away")
    image = bytearray(barmap_config.kernel.read_bytes())
    assert image[btf.offset : btf.offset + 2] == b"\x9f\xeb"  # BTF's magic, little-endian
    image[btf.offset : btf.offset + 2] = b"\0\0"
    kernel = tmp_path / "vmlinux-without-btf"
    kernel.write_bytes(image)
    # the suite's kernel but for its BTF: the accelerator that kernel got, with no probe of
    # the copy (a broken KVM makes a probe wait out its 20 s)
    accel = resolve_accel(barmap_config.accel, barmap_config.qemu, barmap_config.kernel)
    config = replace(barmap_config, kernel=kernel, accel=accel)
    port = _port()
    console = _spawn("debug", "--break", "barmap_mmap", "--gdb-port", str(port),
                     "--no-kernel-symbols", *_args(config), "--log-dir", str(tmp_path))  # fmt: skip
    children.append(console)
    console.expect("this kernel has no BTF")
    console.expect("the driver is loaded before gdb attaches")
    console.expect(r"attach with:\s+(gdb -q -x \S+)")
    gdb = _gdb(console.match.group(1), tmp_path / "gdb.log")
    children.append(gdb)
    # the script placed the loaded driver's symbols, set the breakpoint and continued
    gdb.expect(r"add symbol table from file \"\S+barmap-[0-9a-f]+\.elf\"")
    gdb.expect(r"Breakpoint 1 at 0x[0-9a-f]+: file \S*guest-driver/barmap\.c")
    console.send("\r")
    console.expect(PROMPT)
    console.send("barmap-check --strategy bar\r")
    gdb.expect(r"Breakpoint 1(\.\d+)?, (0x[0-9a-f]+ in )?barmap_mmap \(")
    gdb.expect(r"\(gdb\) ")
    gdb.sendline("continue")
    console.expect(r"verdict=PASS")
    gdb.sendcontrol("c")
    gdb.expect(r"\(gdb\) ")
    gdb.sendline("quit")
    gdb.expect(pexpect.EOF)
    _quit(console)


def test_a_breakpoint_in_module_init_hits(
    barmap_config: MachineConfig, tmp_path: Path, needs_gdb: None, children: list[pexpect.spawn]
) -> None:
    port = _port()
    console = _spawn("debug", "--break", "barmap_init", "--break", "barmap_probe",
                     "--gdb-port", str(port), *_args(barmap_config),
                     "--log-dir", str(tmp_path))  # fmt: skip
    children.append(console)
    console.expect(r"attach with:\s+(gdb -q -x \S+)")
    gdb = _gdb(console.match.group(1), tmp_path / "gdb.log")
    children.append(gdb)
    # init runs first (a hardware breakpoint: init memory is freed afterwards), then probe
    gdb.expect(r"Breakpoint 1(\.\d+)?, (0x[0-9a-f]+ in )?barmap_init \(")
    gdb.expect(r"\(gdb\) ")
    # every stepi runs an instruction (QEMU's TCG once reported a step that an exit
    # request had cut short as done: continuing then stopped at the breakpoint it left);
    # a string instruction's step is one iteration, which moves %rcx, not the PC
    states = []
    for _ in range(STEPS):
        gdb.sendline("stepi")
        gdb.expect(r"\(gdb\) ")
        gdb.sendline('printf "state=%lx/%lx\\n", $pc, $rcx')
        gdb.expect(r"state=([0-9a-f]+/[0-9a-f]+)")
        states.append(gdb.match.group(1))
        gdb.expect(r"\(gdb\) ")
    assert all(a != b for a, b in zip(states, states[1:])), states
    gdb.sendline("continue")
    gdb.expect(r"Breakpoint 2(\.\d+)?, (0x[0-9a-f]+ in )?barmap_probe \(")
    gdb.expect(r"\(gdb\) ")
    gdb.sendline("delete")
    gdb.sendline("continue")
    gdb.expect("Continuing")
    console.send("\r")
    console.expect(PROMPT)
    console.send("test -c /dev/barmap0 && echo PROBED-$((40+2))\r")
    console.expect("PROBED-42")
    gdb.sendcontrol("c")
    gdb.expect(r"\(gdb\) ")
    gdb.sendline("quit")
    gdb.expect(pexpect.EOF)
    _quit(console)


def test_trace_events_show_beside_the_console_and_stay_in_the_log(
    barmap_config: MachineConfig, tmp_path: Path, children: list[pexpect.spawn]
) -> None:
    console = _spawn("run", "--load", "--trace", "barmap_mmio_*", *_args(barmap_config),
                     "--log-dir", str(tmp_path))  # fmt: skip
    children.append(console)
    console.expect("Ctrl-\\] quits")
    console.send("\r")
    console.expect(PROMPT)
    # the driver reads BAR0 (ID, version...) when it probes, and again for INFO
    console.send("barmap-check info\r")
    console.expect(r"trace: .*barmap_mmio_read")
    _quit(console)
    log = (tmp_path / "trace.log").read_text()
    assert re.search(r"barmap_mmio_read .*addr 0x0+\b", log) or "barmap_mmio_read" in log


def test_the_monitor_answers_from_the_session_and_from_another_terminal(
    barmap_config: MachineConfig, tmp_path: Path, children: list[pexpect.spawn]
) -> None:
    name = f"t-monitor-{_port()}"
    console = _spawn("run", "--name", name, *_args(barmap_config), "--log-dir", str(tmp_path))
    children.append(console)
    console.expect("Ctrl-\\] quits")
    console.send("\r")
    console.expect(PROMPT)
    # Ctrl-a c: the monitor, in the session
    console.send("\x01c")
    console.expect(r"\(qemu\) ")
    console.send("info pci\r")
    console.expect(r"PCI device 1234:ba12")  # barmap (include/barmap_regs.h)
    console.expect(r"\(qemu\) ")
    console.send("\r")
    console.expect("back to the serial console")
    console.send("echo STILL-$((6*7))\r")
    console.expect("STILL-42")
    # another terminal: barmap monitor NAME
    other = _spawn("monitor", name, "-c", "info status", "-c", "info mtree -f", timeout=60)
    children.append(other)
    other.expect("VM status: running")
    other.expect("barmap")
    other.expect(pexpect.EOF)
    other.close()
    assert other.exitstatus == 0
    _quit(console)


def _pane(env: dict[str, str], target: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", target], env=env,
                          capture_output=True, text=True, check=False).stdout  # fmt: skip


def test_tmux_puts_console_gdb_and_monitor_in_one_window(
    barmap_config: MachineConfig, tmp_path: Path, needs_gdb: None
) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (scripts/deps.sh installs it)")
    env = {k: v for k, v in os.environ.items() if k != "TMUX"}
    env["TMUX_TMPDIR"] = str(tmp_path)  # a tmux server of this test's own
    name = f"t-tmux-{_port()}"
    proc = subprocess.run(
        [sys.executable, "-m", "barmap", "debug", "--tmux", "--load", "--name", name,
         "--gdb-port", str(_port()), *_args(barmap_config), "--log-dir", str(tmp_path / "log")],
        env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    session = f"barmap-{name}"
    try:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"tmux attach -t {session}" in proc.stdout
        panes = subprocess.run(
            ["tmux", "list-panes", "-t", session, "-F", "#{pane_index}"],
            env=env, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert panes.split() == ["0", "1", "2"]
        want = {f"{session}:0.0": "serial console", f"{session}:0.1": "(gdb)",
                f"{session}:0.2": "QEMU monitor of"}  # fmt: skip
        deadline = time.monotonic() + 90 * timeout_scale()
        while time.monotonic() < deadline:
            seen = {t: _pane(env, t) for t in want}
            if all(w in seen[t] for t, w in want.items()):
                break
            time.sleep(0.5)
        for target, text in want.items():
            assert text in seen[target], f"{target}:\n{seen[target]}"
        # gdb in its pane has the driver's symbols at their load address
        subprocess.run(["tmux", "send-keys", "-t", f"{session}:0.1", "info line barmap_mmap",
                        "Enter"], env=env, check=True)  # fmt: skip
        time.sleep(2)
        pane = _pane(env, f"{session}:0.1")
        assert re.search(
            r'barmap\.c"\s+starts at address 0xffffffffc0[0-9a-f]+ <barmap_mmap>', pane
        ), pane
    finally:
        subprocess.run(["tmux", "kill-server"], env=env, check=False)
