"""pytest plugin (entry point ``barmap``): options and fixtures for guest tests.

``barmap_vm`` is a guest booted once per session (per xdist worker) with the
driver loaded; its state is saved right after, and every test that uses it
starts from that state (restored in well under a second instead of a boot).
When such a test fails, the console tail, the guest's dmesg and the QMP events
are attached to the report and kept as files under ``--barmap-artifacts``
(default ``build/test-artifacts``); the JUnit XML carries their paths.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from barmap.build.artifacts import Artifacts
from barmap.build.kbuild import build_module, kdir
from barmap.cli.options import VmChoice, add_vm_options, vm_choice
from barmap.config import MachineConfig
from barmap.errors import BarmapError, ConfigError
from barmap.guest.checks import insmod, load_module
from barmap.guest.crash import CrashReport
from barmap.guest.machine import Machine, all_machines
from barmap.qemu.accel import cached_probe
from barmap.qemu.launcher import leftover_qemu_pids


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from barmap.testing import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("barmap")
    add_vm_options(g.addoption, prefix="--barmap-")
    g.addoption(
        "--barmap-artifacts",
        default="build/test-artifacts",
        help="where failing guest tests keep console log, dmesg and QMP events",
    )
    g.addoption("--barmap-module", action="append", default=[], metavar="PATH",
                help="a module of yours for the session guest, loaded in its place of"
                " barmap.ko before the state is saved: a .ko, or a source directory built"
                " against the guest kernel (repeatable; loaded in order)")  # fmt: skip
    g.addoption("--barmap-module-args", default="", metavar="ARGS",
                help="module parameters for the (last) --barmap-module")  # fmt: skip
    g.addoption("--barmap-no-restore", action="store_true",
                help="do not restore the booted snapshot before each test")  # fmt: skip


def _choice(config: pytest.Config) -> VmChoice:
    return vm_choice(lambda name: config.getoption(f"--barmap-{name}"))


_ARTIFACTS = pytest.StashKey["Artifacts | ConfigError"]()


def _artifacts(config: pytest.Config) -> Artifacts | ConfigError:
    """The session's artifacts, resolved once (the header and the fixtures share them)."""
    if _ARTIFACTS not in config.stash:
        try:
            config.stash[_ARTIFACTS] = _choice(config).artifacts()
        except ConfigError as exc:
            config.stash[_ARTIFACTS] = exc
    return config.stash[_ARTIFACTS]


def pytest_report_header(config: pytest.Config) -> str | None:
    """Which accelerator the guests run under, and why: a CI log says it once."""
    if config.getoption("--collect-only"):
        return None
    art = _artifacts(config)
    if isinstance(art, ConfigError):
        return None
    requested = config.getoption("--barmap-accel") or os.environ.get("BARMAP_ACCEL", "auto")
    if requested in ("kvm", "tcg"):
        return f"barmap: guests run under {requested} (asked for)"
    result = cached_probe(art.qemu, art.kernel, art.arch)
    if result.usable:
        return "barmap: guests run under kvm (the probe boot worked)"
    return f"barmap: guests run under tcg (kvm unusable: {result.reason})"


@pytest.fixture(scope="session")
def barmap_artifacts(request: pytest.FixtureRequest) -> Artifacts:
    art = _artifacts(request.config)
    if isinstance(art, ConfigError):
        pytest.fail(str(art), pytrace=False)
    return art


@pytest.fixture(scope="session")
def barmap_config(request: pytest.FixtureRequest, barmap_artifacts: Artifacts) -> MachineConfig:
    config = _choice(request.config).config(barmap_artifacts)
    return request.config.hook.pytest_barmap_configure(config=config) or config


class SessionVM:
    """The session's machine and the saved state each test restores."""

    def __init__(self, vm: Machine, state: Path, restore: bool) -> None:
        self.vm = vm
        self.state = state
        self.restore = restore
        self.used = False


@pytest.fixture(scope="session")
def barmap_kdir(barmap_artifacts: Artifacts) -> Path:
    """The guest kernel's build tree: ``make -C KDIR M=$PWD modules`` builds for the guest
    (``barmap.build.kbuild.build_module`` adds what a Debian 13 kernel needs on a Debian 12
    host)."""
    try:
        return kdir(barmap_artifacts.kernel_env)
    except ConfigError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def barmap_modules(request: pytest.FixtureRequest, barmap_artifacts: Artifacts) -> list[Path]:
    """The ``--barmap-module`` modules as .ko files on the host (directories built)."""
    modules: list[Path] = []
    for given in request.config.getoption("--barmap-module"):
        path = Path(given)
        try:
            modules += build_module(path, barmap_artifacts.kernel_env) if path.is_dir() else [path]
        except ConfigError as exc:
            pytest.fail(f"--barmap-module {given}: {exc}", pytrace=False)
        if not modules[-1].is_file():
            pytest.fail(f"--barmap-module {given}: no such file", pytrace=False)
    return modules


@pytest.fixture(scope="session")
def barmap_session(
    request: pytest.FixtureRequest,
    barmap_config: MachineConfig,
    barmap_modules: list[Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SessionVM]:
    """One booted guest for the session, with the driver (barmap.ko, or the --barmap-module
    modules) loaded, the prepare hook run, and its state saved."""
    work = tmp_path_factory.mktemp("barmap-session")
    guest = {ko: f"/lib/modules/user/{ko.name}" for ko in barmap_modules}
    config = replace(barmap_config, files=(*barmap_config.files, *guest.items()))
    with Machine(config, log_dir=work) as vm:
        if not barmap_modules:
            load_module(vm)
        for i, ko in enumerate(barmap_modules):
            last = i == len(barmap_modules) - 1
            params = request.config.getoption("--barmap-module-args") if last else ""
            insmod(vm, guest[ko], params)
        request.config.hook.pytest_barmap_prepare(vm=vm)
        session = SessionVM(vm, work / "booted.state",
                            not request.config.getoption("--barmap-no-restore"))  # fmt: skip
        if session.restore:
            vm.save_state(session.state)
        yield session


@pytest.fixture
def barmap_vm(barmap_session: SessionVM) -> Iterator[Machine]:
    """A booted guest with the driver loaded, in the same state for every test.

    The test fails if the guest kernel reports a failure (oops, WARNING...)
    while it runs, even when its own commands succeeded.
    """
    vm = barmap_session.vm
    if barmap_session.restore and (barmap_session.used or not vm.is_running()):
        vm.restore_state(barmap_session.state)
    barmap_session.used = True
    vm.check_crash()
    yield vm
    vm.check_crash()


def _safe_name(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid)[-120:]


def _collect(vm: Machine, dest: Path) -> dict[str, Path]:
    """Console tail, dmesg and QMP events of ``vm`` into ``dest``; best effort on a dead VM."""
    dest.mkdir(parents=True, exist_ok=True)
    files = {"console": dest / "console.log"}
    # the whole log (across snapshot restores) when the machine keeps one
    log = vm.console_log if vm.log_dir else None
    if log is not None and log.is_file():
        files["console"].write_bytes(log.read_bytes())
    else:
        files["console"].write_text(vm.console_text())
    if vm.is_running():
        try:
            dmesg = vm.run("dmesg", timeout=10).output
            files["dmesg"] = dest / "dmesg.txt"
            files["dmesg"].write_text(dmesg)
        except BarmapError:
            pass
        for name, command in (("info-pci", "info pci"), ("info-mtree", "info mtree -f")):
            try:
                files[name] = dest / f"{name}.txt"
                files[name].write_text(vm.qmp.hmp(command))
            except Exception:  # the monitor may be gone with QEMU
                files.pop(name, None)
    events = vm.qmp_events()
    files["qmp-events"] = dest / "qmp-events.json"
    files["qmp-events"].write_text(json.dumps(events, indent=1))
    return files


def _unreported_crashes() -> list[tuple[Machine, CrashReport]]:
    """Every kernel failure report of any machine of this process no GuestCrash carried."""
    return [(vm, r) for vm in all_machines() for r in vm.unreported_crashes()]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    # any machine the test made or used: a kernel report fails the test, whichever path
    # (console, SSH, its own Machine) it took, even when every command succeeded
    crashes = _unreported_crashes() if report.when in ("call", "teardown") else []
    for vm, crash in crashes:
        text = f"GuestCrash: {crash} (console log: {vm.console_log if vm.log_dir else '-'})"
        if report.passed:
            report.outcome = "failed"
            report.longrepr = f"{text}\n\n{crash.excerpt}"
        elif hasattr(report.longrepr, "addsection"):
            report.longrepr.addsection("barmap kernel report", f"{text}\n\n{crash.excerpt}")  # type: ignore[union-attr]
    if not report.failed:
        return
    funcargs = getattr(item, "funcargs", {})
    vm = next((v for v in funcargs.values() if isinstance(v, Machine)), None)
    vm = vm or (crashes[0][0] if crashes else None)
    if vm is None:
        return
    # the console as the test left it, before the report's own dmesg adds to it
    console = vm.console_text()[-6000:]
    base = Path(item.config.getoption("--barmap-artifacts"))
    files = _collect(vm, base / _safe_name(f"{item.nodeid}-{report.when}"))
    sections = [("barmap console (as the test left it)", console)]
    if "dmesg" in files:
        sections.append(("barmap dmesg", files["dmesg"].read_text()[-6000:]))
    else:
        sections.append(("barmap dmesg", "not read: the guest does not answer its console"))
    sections.append(("barmap evidence", "\n".join(f"{n}: {p.resolve()}" for n, p in files.items())))
    for title, text in sections:
        # in the failure's own text, so it also reaches the JUnit XML <failure> body
        if hasattr(report.longrepr, "addsection"):
            report.longrepr.addsection(title, text)  # type: ignore[union-attr]
        else:
            report.sections.append((title, text))
    for name, path in files.items():
        report.user_properties.append((f"barmap_{name}", str(path.resolve())))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """No QEMU started by this test process may outlive the suite."""
    import signal

    left = leftover_qemu_pids()
    if not left:
        return
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    message = f"barmap: QEMU processes left running after the suite (killed now): {left}"
    if reporter is not None:
        reporter.write_line(message, red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
