"""Choosing KVM or TCG: KVM is used only when a short probe boot proves it works.

On some hosts /dev/kvm exists but is unusable (QEMU asserts on an MSR, or the
guest hangs).  The probe boots the guest kernel without a root file system
under KVM and waits for the kernel's first words on the console, with a
deadline; the verdict is cached per host, QEMU binary and kernel.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from barmap.build.paths import cache_dir
from barmap.errors import QEMUStartError
from barmap.qemu.cmdline import firmware_args

PROBE_DEADLINE = 20.0
# The kernel ran its whole boot under KVM: with no root file system it ends by failing
# to mount one.  Earlier words prove little: on one host the kernel printed its
# banner under KVM, then hit an "emulation failure" and the VM hung.
_ALIVE = (b"VFS: Unable to mount root",)
# What QEMU says when KVM cannot run the guest: the reason given when the boot fails.
_KVM_FAILURES = (b"emulation failure", b"KVM internal error", b"KVM: entry failed", b"Assertion")


class KvmUnusable(QEMUStartError):
    """KVM asked for where the probe found it does not work."""


@dataclass(frozen=True)
class ProbeResult:
    usable: bool
    reason: str
    seconds: float


# Bumped when what counts as "usable" changes, so no verdict of an older probe is kept.
PROBE_VERSION = "2"


def _cache_key(qemu: Path, kernel: Path) -> str:
    parts = [PROBE_VERSION, os.uname().release, os.uname().version]
    for path in (qemu, kernel):
        st = path.stat()
        parts += [str(path), str(st.st_mtime_ns), str(st.st_size)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


# the host machine (os.uname) each guest architecture's KVM needs
KVM_HOST = {"x86_64": "x86_64", "arm64": "aarch64"}


def probe_kvm(
    qemu: Path, kernel: Path, deadline: float = PROBE_DEADLINE, arch: str = "x86_64"
) -> ProbeResult:
    """Boot ``kernel`` (of guest architecture ``arch``) under KVM for at most ``deadline``
    seconds; no caching."""
    host = os.uname().machine
    if KVM_HOST.get(arch, arch) != host:
        return ProbeResult(False, f"an {arch} guest on an {host} host has no KVM", 0.0)
    if not os.path.exists("/dev/kvm"):
        return ProbeResult(False, "/dev/kvm does not exist", 0.0)
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return ProbeResult(False, "/dev/kvm is not readable and writable by this user", 0.0)
    machine, console = (
        ("virt,gic-version=max", "console=ttyAMA0 earlycon")
        if arch == "arm64"
        else ("pc", "console=ttyS0 earlyprintk=ttyS0")
    )
    cmd = [
        str(qemu), "-M", machine, "-accel", "kvm", "-cpu", "host", "-m", "256",
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        *firmware_args(), "-serial", "stdio",
        "-kernel", str(kernel), "-append", f"{console} panic=-1",
    ]  # fmt: skip
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
    except OSError as exc:
        return ProbeResult(False, f"cannot run {qemu}: {exc.strerror}", 0.0)
    timed_out = False
    try:
        out, _ = proc.communicate(timeout=deadline)
    except subprocess.TimeoutExpired:
        timed_out = True
        proc.kill()
        out, _ = proc.communicate()
    seconds = time.monotonic() - start
    if any(marker in out for marker in _ALIVE):
        return ProbeResult(True, f"guest kernel ran under KVM in {seconds:.1f} s", seconds)
    lines = [ln for ln in out.decode("utf-8", "replace").splitlines() if ln.strip()]
    failures = [ln for ln in lines if any(f.decode() in ln for f in _KVM_FAILURES)]
    if failures:
        why = failures[0].strip()
    elif timed_out:
        why = f"the guest did not finish booting within {deadline:.0f} s (hang)"
    elif proc.returncode != 0 and lines:
        why = lines[-1].strip()
    else:
        why = f"QEMU exited with status {proc.returncode} and the guest printed nothing"
    return ProbeResult(False, why, seconds)


def _verdict_path() -> Path:
    return cache_dir() / "kvm-probe.json"


# Verdicts kept, newest last: one per QEMU and kernel a run boots (a suite boots a few).
VERDICTS_KEPT = 32


def _read_verdicts(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    if "key" in data:  # the one-verdict file of earlier versions
        return {str(data["key"]): data}
    verdicts = data.get("verdicts")
    return verdicts if isinstance(verdicts, dict) else {}


def cached_verdict(qemu: Path, kernel: Path) -> ProbeResult | None:
    """The probe's verdict for this host, QEMU and kernel, if one was made."""
    found: Any = _read_verdicts(_verdict_path()).get(_cache_key(qemu, kernel))
    try:
        return ProbeResult(bool(found["usable"]), str(found["reason"]), float(found["seconds"]))
    except (KeyError, TypeError, ValueError):
        return None


def store_verdict(qemu: Path, kernel: Path, result: ProbeResult) -> None:
    """Keep ``result`` beside the verdicts for other QEMUs and kernels (under a lock:
    parallel workers probe too)."""
    path = _verdict_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        verdicts = _read_verdicts(path)
        key = _cache_key(qemu, kernel)
        verdicts.pop(key, None)
        verdicts[key] = result.__dict__
        kept = dict(list(verdicts.items())[-VERDICTS_KEPT:])
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"verdicts": kept}))
        tmp.replace(path)


def cached_probe(qemu: Path, kernel: Path, arch: str = "x86_64") -> ProbeResult:
    found = cached_verdict(qemu, kernel)
    if found is not None:
        return found
    result = probe_kvm(qemu, kernel, arch=arch)
    store_verdict(qemu, kernel, result)
    return result


_warned = False


def wants_huge_pages(accel: str) -> bool:
    """Whether QEMU keeps the transparent huge pages it asks for: under KVM only (under TCG
    they buy nothing and cost a 2 MiB clear per first touch: docs/performance.md)."""
    return accel == "kvm"


def resolve_accel(requested: str, qemu: Path, kernel: Path, arch: str = "x86_64") -> str:
    """``kvm`` or ``tcg`` for ``requested`` (``auto``, ``kvm``, ``tcg``); warns once on fallback.

    ``kvm`` asked for outright is not probed; but where the probe already found KVM
    unusable for this QEMU and kernel, it is refused at once with the probe's reason
    (a guest there only hangs, or stops half a minute later).
    """
    global _warned
    if requested == "tcg":
        return requested
    if requested == "kvm":
        known = cached_verdict(qemu, kernel)
        if known is not None and not known.usable:
            raise KvmUnusable(
                f"accel kvm: KVM does not work on this host for this QEMU and kernel "
                f"({known.reason}); auto falls back to TCG; delete {_verdict_path()} to "
                "probe again"
            )
        return requested
    result = cached_probe(qemu, kernel, arch)
    if result.usable:
        return "kvm"
    if not _warned:
        print(f"barmap: KVM unusable ({result.reason}); using TCG", file=sys.stderr)
        _warned = True
    return "tcg"
