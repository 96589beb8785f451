"""pytest plugin (entry point ``barmap``): options and fixtures for guest tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from barmap.artifacts import Artifacts, find_artifacts
from barmap.checks import load_module
from barmap.config import ACCELS, MachineConfig
from barmap.errors import ConfigError
from barmap.machine import Machine


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("barmap")
    g.addoption(
        "--barmap-accel",
        choices=ACCELS,
        default=None,
        help="auto (probe KVM, fall back to TCG), kvm or tcg; default $BARMAP_ACCEL",
    )
    g.addoption("--barmap-qemu", default=None, help="QEMU binary")
    g.addoption("--barmap-kernel", default=None, help="guest kernel image")
    g.addoption("--barmap-initrd", default=None, help="guest initramfs")
    g.addoption("--barmap-suite", default=None, help="kernel suite: bookworm or trixie")


@pytest.fixture(scope="session")
def barmap_artifacts(request: pytest.FixtureRequest) -> Artifacts:
    opt = request.config.getoption
    art = find_artifacts(
        opt("--barmap-suite"), opt("--barmap-qemu"), opt("--barmap-kernel"), opt("--barmap-initrd")
    )
    try:
        art.check()
    except ConfigError as exc:
        pytest.fail(str(exc), pytrace=False)
    return art


@pytest.fixture(scope="session")
def barmap_config(request: pytest.FixtureRequest, barmap_artifacts: Artifacts) -> MachineConfig:
    import os

    accel = request.config.getoption("--barmap-accel") or os.environ.get("BARMAP_ACCEL", "auto")
    return MachineConfig(
        qemu=barmap_artifacts.qemu,
        kernel=barmap_artifacts.kernel,
        initrd=barmap_artifacts.initrd,
        accel=accel,
    )  # type: ignore[arg-type]


@pytest.fixture
def barmap_log_dir(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    yield tmp_path_factory.mktemp(request.node.name[:40])


@pytest.fixture(scope="session")
def barmap_session_vm(
    barmap_config: MachineConfig, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Machine]:
    """One booted guest for the session, with the driver loaded."""
    log_dir = tmp_path_factory.mktemp("barmap-session")
    with Machine(barmap_config, log_dir=log_dir) as vm:
        load_module(vm)
        yield vm


@pytest.fixture
def barmap_vm(barmap_session_vm: Machine) -> Iterator[Machine]:
    """The session guest; the test fails if the guest kernel reports a failure meanwhile."""
    barmap_session_vm.check_crash()
    yield barmap_session_vm
    barmap_session_vm.check_crash()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if not report.failed:
        return
    funcargs = getattr(item, "funcargs", {})
    vm = next((v for v in funcargs.values() if isinstance(v, Machine)), None)
    if vm is None:
        return
    report.sections.append(("barmap console tail", vm.console_text()[-6000:]))
    if vm.log_dir:
        report.sections.append(("barmap console log", str(vm.console_log)))
