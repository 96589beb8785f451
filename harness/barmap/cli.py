"""The ``barmap`` command: build, demo, run, debug, doctor."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from barmap import checks
from barmap.artifacts import BOOTS, Artifacts, find_artifacts
from barmap.config import ACCELS, DEFAULT_MACHINE, MACHINE_TYPES, MachineConfig
from barmap.errors import BarmapError, MachineError
from barmap.machine import Machine
from barmap.paths import DEFAULT_SUITE, REPO_ROOT, SUITES, cache_dir, firmware_file, kernel_suite
from barmap.report import table

EPILOG = """\
examples:
  barmap demo                      boot, load the driver, check both mmap strategies
  barmap run --load                an interactive serial shell with the driver loaded
  barmap ssh -- cat /proc/iomem    boot with SSH and run one command (no command: a session)
  barmap debug --break barmap_mmap gdb stub and the driver's symbols (prints one gdb command)
  barmap monitor                   the QEMU monitor of a running run/debug session
  barmap doctor                    what is built, cached and usable here
"""


SUITE_HELP = f"kernel suite: {' or '.join(SUITES)} (default: {DEFAULT_SUITE})"


def _log_dir(name: str) -> Path:
    base = Path(os.environ.get("BARMAP_LOG_DIR") or Path.cwd() / "build" / "logs")
    return base / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"


def _add_vm_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("virtual machine")
    g.add_argument(
        "--accel",
        choices=ACCELS,
        default=os.environ.get("BARMAP_ACCEL", "auto"),
        help="auto probes KVM and falls back to TCG (default: %(default)s)",
    )
    g.add_argument("--qemu", help="QEMU binary (default: the cached build)")
    g.add_argument("--kernel", help="guest kernel image (default: the cached distro kernel)")
    g.add_argument(
        "--boot",
        choices=BOOTS,
        help="the distro kernel's ELF vmlinux via PVH, or its bzImage (default: $BARMAP_BOOT or"
        " auto: PVH when the kernel has it)",
    )
    g.add_argument("--initrd", help="initramfs (default: build/SUITE/initramfs.cpio)")
    g.add_argument("--suite", help=SUITE_HELP)
    g.add_argument("--memory", type=int, default=1024, metavar="MiB", help="guest RAM")
    g.add_argument(
        "--machine",
        choices=MACHINE_TYPES,
        default=DEFAULT_MACHINE,
        help="q35 (PCIe, each device behind a root port) or pc (default: %(default)s)",
    )
    g.add_argument(
        "--boot-log",
        action="store_true",
        help="every kernel boot message on the console (default: warnings and worse)",
    )
    g.add_argument("--log-dir", type=Path, help="where to keep the console log")


def _add_session_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("session")
    g.add_argument("--name", help="the session's name for `barmap monitor` (default: COMMAND-PID)")
    g.add_argument(
        "--trace",
        action="append",
        metavar="PATTERN",
        help="QEMU trace events to show beside the console and keep in the log "
        "directory's trace.log (repeatable; e.g. 'barmap_*')",
    )


def _artifacts(args: argparse.Namespace) -> Artifacts:
    art = find_artifacts(args.suite, args.qemu, args.kernel, args.initrd, args.boot)
    art.check()
    return art


def _config(
    args: argparse.Namespace, art: Artifacts | None = None, **overrides: object
) -> MachineConfig:
    config = (art or _artifacts(args)).machine_config(
        accel=args.accel,
        memory_mb=args.memory,
        boot_log=args.boot_log,
        machine=args.machine,
    )
    return replace(config, **overrides)  # type: ignore[arg-type]


def cmd_demo(args: argparse.Namespace) -> int:
    """The seed question's story: every strategy works, then three ways to read nothing."""
    from barmap import demo

    config = _config(args)
    log_dir = args.log_dir or _log_dir("demo")
    with Machine(config, log_dir=log_dir) as vm:
        print(
            f"barmap: guest up in {vm.boot_seconds:.1f} s ({vm.accel}); "
            f"console log {vm.console_log}",
            file=sys.stderr,
        )
        checks.load_module(vm)
        strategies = [r["row"] for r in checks.tool_tables(vm)[0] if r["driver"]]
        rows = demo.working(vm, strategies) + demo.failures(vm)
        vm.check_crash()
    if args.json:
        print(json.dumps([r.__dict__ for r in rows], indent=2))
    else:
        print(
            table(
                ("case", "bytes checked", "mismatches", "reads", "barmap-why", "verdict"),
                [(r.case, r.bytes_checked, r.mismatches, r.reads, r.cause, r.verdict)
                 for r in rows],
            )
        )  # fmt: skip
    return 0 if rows and all(r.verdict == "PASS" for r in rows) else 1


def cmd_run(args: argparse.Namespace, *, debug: bool = False) -> int:
    from barmap import debug as dbg
    from barmap.interactive import KEYS_HELP, attach

    name = args.name or f"{'debug' if debug else 'run'}-{os.getpid()}"
    if debug and args.tmux:
        return dbg.in_tmux(sys.argv[1:] if args.argv is None else args.argv, name)
    breaks = tuple(getattr(args, "breaks", None) or ())
    args.breaks = list(breaks)
    if debug and getattr(args, "symbols", False):
        from barmap.symbols import fetch

        fetch(args.suite)
    paused = debug and not (args.load or breaks)
    overrides: dict[str, object] = {"hmp_socket": True, "trace": tuple(args.trace or ())}
    if debug:
        overrides["gdb_port"] = args.gdb_port
    if paused:
        overrides["boot_timeout"] = 24 * 3600.0
    art = _artifacts(args)
    config = _config(args, art, **overrides)
    log_dir = args.log_dir or _log_dir("debug" if debug else "run")
    vm = Machine(config, log_dir=log_dir)
    script: Path | None = None
    try:
        if paused:
            vm.start(paused=True)
            dbg.register(vm, name, log_dir, "debug")
            script = dbg.paused_script(args, log_dir)
            print(_gdb_hint(script, args.gdb_port, paused=True), file=sys.stderr)
            _announce(args, script)
            print(
                "barmap: the guest is stopped at its first instruction; `continue` in gdb "
                "(or press Enter here) to run it",
                file=sys.stderr,
            )
            if os.isatty(sys.stdin.fileno()):
                sys.stdin.readline()
            if vm.qmp.cmd("query-status")["status"] != "running":
                vm.qmp.cmd("cont")
            vm.wait_boot(quiet_shell=False)
        elif debug:
            vm.start()
            dbg.register(vm, name, log_dir, "debug")
            # the module the initramfs carries, built beside it (make image)
            args.driver_ko = args.driver_ko or art.initrd.parent / "barmap.ko"
            script = dbg.prepare(vm, args, log_dir, art.vmlinux)
            vm.console.send("stty echo\n")
            print(_gdb_hint(script, args.gdb_port, paused=False, deferred=bool(breaks)),
                  file=sys.stderr)  # fmt: skip
            _announce(args, script)
        else:
            vm.start(quiet_shell=False)
            dbg.register(vm, name, log_dir, "run")
            if args.load:
                vm.console.send(checks.insmod_command(vm) + "\n")
        traced = f"; trace events of {', '.join(config.trace)} shown" if config.trace else ""
        attach(
            vm,
            banner=f"barmap: serial console ({vm.accel}, booted in "
            f"{vm.boot_seconds:.1f} s); Ctrl-] quits; session {name} "
            f"(barmap monitor {name}){traced}; log {vm.console_log}\r\n{KEYS_HELP.rstrip()}",
            trace=vm.trace_log if config.trace else None,
        )
    finally:
        vm.shutdown()
    return 0


def _announce(args: argparse.Namespace, script: Path) -> None:
    """Tell a waiting tmux pane where the gdb script is (``--announce-script``)."""
    if getattr(args, "announce_script", None):
        tmp = Path(args.announce_script).with_suffix(".tmp")
        tmp.write_text(str(script))
        tmp.replace(args.announce_script)


def _gdb_hint(script: Path, port: int, *, paused: bool, deferred: bool = False) -> str:
    """How to attach: one gdb command, and what the script does."""
    from barmap.debug import gdb_command

    if paused:
        then = "the guest waits at its first instruction"
    elif deferred:
        then = "the driver is loaded once gdb is attached, and the script continues"
    else:
        then = "gdb stops the guest when it attaches; `continue` runs it"
    return (
        f"barmap: gdb stub on 127.0.0.1:{port} (the script: target remote 127.0.0.1:{port},"
        f" symbols, breakpoints); attach with:\n  {gdb_command(script)}\n"
        f"barmap: {then}"
    )


def cmd_monitor(args: argparse.Namespace) -> int:
    from barmap import monitor

    if args.list:
        rows = [(s.name, s.command, str(s.qemu_pid), str(s.gdb_port or "-"), s.log_dir)
                for s in monitor.sessions()]  # fmt: skip
        print(table(("session", "command", "qemu pid", "gdb port", "log"), rows))
        return 0
    session = monitor.find_session(args.name)
    if args.command:
        return monitor.run_commands(session.hmp_socket, args.command)
    print(f"barmap: QEMU monitor of {session.name}; Ctrl-D leaves", file=sys.stderr)
    return monitor.interactive(session.hmp_socket)


def cmd_ssh(args: argparse.Namespace) -> int:
    """Boot with SSH; run COMMAND (exit with its status) or an interactive ssh session."""
    config = _config(args, ssh=True)
    log_dir = args.log_dir or _log_dir("ssh")
    with Machine(config, log_dir=log_dir) as vm:
        if args.load:
            checks.load_module(vm)
        session = vm.ssh()
        command = args.command[1:] if args.command[:1] == ["--"] else args.command
        if command:
            status, out, err = session.exec(" ".join(command), timeout=args.timeout)
            sys.stdout.write(out)
            sys.stderr.write(err)
            return status
        keys = session.keys
        known = vm.rundir / "known_hosts"
        known.write_text(f"[127.0.0.1]:{vm.ssh_port} ssh-ed25519 {keys.host_public}\n")
        print(
            f"barmap: guest up in {vm.boot_seconds:.1f} s; ssh on 127.0.0.1:{vm.ssh_port}",
            file=sys.stderr,
        )
        return subprocess.call([
            "ssh", "-i", str(keys.client_key), "-p", str(vm.ssh_port),
            "-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes",
            "-o", "IdentitiesOnly=yes", "root@127.0.0.1",
        ])  # fmt: skip


def cmd_bench(args: argparse.Namespace) -> int:
    """Boot phases per boot path, snapshot and bandwidth figures (JSON): measured, not asserted."""
    from barmap.bench import boot_report, machine_report, quiet_config

    config = _config(args)
    log_dir = args.log_dir or _log_dir("bench")
    # each way this kernel can boot: the distro kernel's PVH vmlinux and its bzImage
    boots = [args.boot] if args.boot or args.kernel else ["pvh", "bzimage"]
    configs = {}
    for boot in boots:
        try:
            art = find_artifacts(args.suite, args.qemu, args.kernel, args.initrd, boot)
        except BarmapError as exc:
            print(f"barmap bench: no {boot} boot: {exc}", file=sys.stderr)
            continue
        configs[art.boot] = quiet_config(replace(config, kernel=art.kernel))
    result = {
        "qemu": str(config.qemu),
        "kernel": str(config.kernel),
        "boot": boot_report(configs, args.rounds, log_dir) if args.rounds > 0 else {},
        **machine_report(config, args.repeat, log_dir),
    }
    text = json.dumps(result, indent=2)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    print(text)
    return 0


BUILD_TARGETS = ("all", "qemu", "kernel", "driver", "image")  # make targets of the same name


def cmd_atlas(args: argparse.Namespace) -> int:
    """Every strategy through the scenario matrix, on each kernel: JSON, Markdown, HTML."""
    from barmap import atlas

    if args.render:  # the documents of an earlier run, again
        result = json.loads(args.render.read_text())
        _atlas_write(result, args.out, args.docs)
        return 0
    suites = args.suites.split(",") if args.suites else [args.suite or kernel_suite()]
    configs = {}
    for suite in suites:
        if suite not in SUITES:
            print(f"barmap atlas: unknown suite {suite!r} ({', '.join(SUITES)})", file=sys.stderr)
            return 2
        configs[suite] = _config(args, find_artifacts(suite, args.qemu, None, None, args.boot))
    plan = atlas.Plan(
        rows=tuple(args.rows.split(",")) if args.rows else (),
        scenarios=tuple(args.scenarios.split(",")) if args.scenarios else (),
        cycles=args.cycles,
    )
    log_dir = args.log_dir or _log_dir("atlas")
    result = atlas.run(configs, plan, log_dir=log_dir,
                       progress=lambda s: print(f"barmap atlas: {s}", file=sys.stderr))  # fmt: skip
    out = args.out
    _atlas_write(result, out, args.docs)
    bad = [c for c in result["cells"] if c["verdict"] in ("error", "host")]
    print(f"barmap atlas: {len(result['cells'])} cells in {result['seconds']} s, "
          f"{len(bad)} the testbed could not run; {out.with_suffix('.html')}")  # fmt: skip
    return 1 if bad else 0


def _atlas_write(result: dict[str, Any], out: Path, docs: Path | None) -> None:
    from barmap import atlas_report

    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text(atlas_report.to_markdown(result) + "\n")
    out.with_suffix(".html").write_text(atlas_report.to_html(result) + "\n")
    if docs:
        docs.write_text(atlas_report.docs_markdown(result) + "\n")


def cmd_env(args: argparse.Namespace) -> int:
    """The exports a build or test of your own needs, for eval in a shell."""
    import shlex

    from barmap.kbuild import kdir

    art = _artifacts(args)
    values = {
        "BARMAP_DIR": str(REPO_ROOT),
        "BARMAP_QEMU": str(art.qemu),
        "BARMAP_KERNEL": str(art.kernel),
        "BARMAP_INITRD": str(art.initrd),
        "BARMAP_KENV": str(art.kernel_env),
        "BARMAP_KDIR": str(kdir(art.kernel_env)),
    }
    for name, value in values.items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    return subprocess.call(["make", "-C", str(REPO_ROOT), args.what])


def cmd_doctor(args: argparse.Namespace) -> int:
    from barmap.accel import cached_probe

    art = find_artifacts(args.suite)
    rows: list[tuple[str, str, str]] = []

    def item(name: str, ok: bool, detail: str) -> None:
        rows.append((name, "ok" if ok else "MISSING", detail))

    item("QEMU build", art.qemu.is_file(), str(art.qemu))
    item("guest kernel", art.kernel.is_file(), f"{art.kernel_release or '?'} {art.kernel}")
    item("initramfs", art.initrd.is_file(), str(art.initrd))
    for tool in ("make", "gcc", "ninja", "busybox", "cpio", "gdb", "dropbear"):
        path = shutil.which(tool) or (
            f"/usr/sbin/{tool}" if Path(f"/usr/sbin/{tool}").exists() else ""
        )
        item(tool, bool(path), path)
    for name in ("bios-256k.bin", "kvmvapic.bin"):
        found = firmware_file(name)
        item("firmware", found is not None, str(found or f"{name}: in none of the -L dirs"))
    if art.qemu.is_file() and art.kernel.is_file():
        probe = cached_probe(art.qemu, art.kernel)
        rows.append(("KVM", "usable" if probe.usable else "unusable (TCG)", probe.reason))
    else:
        rows.append(("KVM", "unknown", "needs the QEMU build and kernel to probe"))
    rows.append(("cache", "ok", str(cache_dir())))
    for port, use in ((1234, "gdb stub (barmap debug)"),):
        with socket.socket() as s:
            free = s.connect_ex(("127.0.0.1", port)) != 0
        rows.append((f"port {port}", "free" if free else "IN USE", use))
    print(table(("what", "state", "detail"), rows))
    return 0 if all(r[1] != "MISSING" for r in rows[:3]) else 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="barmap",
        description="Emulated PCI device memory for testing how drivers map it into "
        "userspace (remap_pfn_range vs dma_mmap_coherent).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    b = sub.add_parser("build", help="build QEMU, the kernel cache, the driver and the image")
    b.add_argument("what", nargs="?", default="all", choices=BUILD_TARGETS)
    b.set_defaults(func=cmd_build)

    d = sub.add_parser("demo", help="boot, load the driver, check both mmap strategies")
    _add_vm_options(d)
    d.add_argument("--json", action="store_true", help="JSON instead of a table")
    d.set_defaults(func=cmd_demo)

    r = sub.add_parser("run", help="an interactive serial shell in the guest (Ctrl-] quits)")
    _add_vm_options(r)
    _add_session_options(r)
    r.add_argument("--load", action="store_true", help="insmod the barmap driver first")
    r.set_defaults(func=cmd_run)

    sh = sub.add_parser("ssh", help="boot with SSH and run a command, or an ssh session")
    _add_vm_options(sh)
    sh.add_argument("--load", action="store_true", help="insmod the barmap driver first")
    sh.add_argument("--timeout", type=float, default=300.0, help="command timeout, seconds")
    sh.add_argument("command", nargs=argparse.REMAINDER, help="command to run in the guest")
    sh.set_defaults(func=cmd_ssh)

    g = sub.add_parser(
        "debug",
        help="like run, with gdb's stub, the driver's symbols and breakpoints (docs/debugging.md)",
    )
    _add_vm_options(g)
    _add_session_options(g)
    g.add_argument(
        "--load",
        action="store_true",
        help="boot, insmod the driver and write a gdb script with its symbols (without "
        "--load or --break the guest stops at its first instruction)",
    )
    g.add_argument(
        "--break",
        dest="breaks",
        action="append",
        metavar="FUNC",
        help="a breakpoint (repeatable): the driver then loads once gdb is attached, so "
        "its init and probe can be stopped in too",
    )
    g.add_argument("--gdb-port", type=int, default=1234, help="gdb stub port (default 1234)")
    g.add_argument(
        "--symbols",
        action="store_true",
        help="fetch the kernel's debug symbols first (make symbols: ~860 MB once)",
    )
    g.add_argument(
        "--no-kernel-symbols",
        action="store_true",
        help="do not give gdb the kernel's symbols, even when they are here",
    )
    g.add_argument(
        "--driver-ko", type=Path, help="the .ko with debug info (default: the built one)"
    )
    g.add_argument(
        "--tmux", action="store_true", help="console, gdb and monitor in one tmux window"
    )
    g.add_argument("--announce-script", help=argparse.SUPPRESS)
    g.set_defaults(func=lambda a: cmd_run(a, debug=True), argv=None)

    mo = sub.add_parser("monitor", help="the QEMU monitor (HMP) of a running run/debug session")
    mo.add_argument("name", nargs="?", help="the session (default: the only one running)")
    mo.add_argument(
        "-c", "--command", action="append", help="run this HMP command and exit (repeatable)"
    )
    mo.add_argument("--list", action="store_true", help="list the running sessions")
    mo.set_defaults(func=cmd_monitor)

    be = sub.add_parser("bench", help="boot, snapshot-restore and bandwidth figures (JSON)")
    _add_vm_options(be)
    be.add_argument("--json", type=Path, help="also write the JSON to this file")
    be.add_argument("--repeat", type=int, default=5, help="snapshot restores to time")
    be.add_argument("--rounds", type=int, default=5, help="boots per boot path (medians)")
    be.set_defaults(func=cmd_bench)

    at = sub.add_parser("atlas", help="every strategy through one scenario matrix (JSON/HTML)")
    _add_vm_options(at)
    at.add_argument("--suites", help="kernel suites, comma-separated (default: --suite's)")
    at.add_argument("--rows", help="strategies, comma-separated (default: all)")
    at.add_argument("--scenarios", help="scenarios, comma-separated (default: all)")
    at.add_argument("--cycles", type=int, default=200, help="race cycles per removal path")
    at.add_argument("--out", type=Path, default=Path("build/atlas.json"),
                    help="the JSON; .md and .html beside it (default: %(default)s)")  # fmt: skip
    at.add_argument("--docs", type=Path, help="also write the generated docs/atlas.md here")
    at.add_argument("--render", type=Path, metavar="JSON",
                    help="no run: the documents of an earlier run's JSON, again")  # fmt: skip
    at.set_defaults(func=cmd_atlas)

    en = sub.add_parser("env", help="the exports your own module build and tests need")
    en.add_argument("--suite", help=SUITE_HELP)
    en.add_argument("--qemu", help=argparse.SUPPRESS)
    en.add_argument("--kernel", help=argparse.SUPPRESS)
    en.add_argument("--initrd", help=argparse.SUPPRESS)
    en.add_argument("--boot", choices=BOOTS, help=argparse.SUPPRESS)
    en.set_defaults(func=cmd_env)

    doc = sub.add_parser("doctor", help="what is installed, cached and usable")
    doc.add_argument("--suite", help=SUITE_HELP)
    doc.set_defaults(func=cmd_doctor)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except MachineError as exc:
        print(f"barmap: error: {exc.message}", file=sys.stderr)
        if exc.log_path:
            print(f"barmap: console log: {exc.log_path}", file=sys.stderr)
        elif exc.console_tail:
            print("barmap: console tail:\n" + exc.console_tail[-2000:], file=sys.stderr)
        return 1
    except BarmapError as exc:
        print(f"barmap: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("barmap: interrupted", file=sys.stderr)
        return 130
