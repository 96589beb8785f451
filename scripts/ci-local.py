#!/usr/bin/env python3
"""Run a job of .github/workflows/ci.yml here, in a fresh Debian root, as GitHub would.

Usage: ci-local.py JOB [--qemu SUITE] [--kernel SUITE] [--host RELEASE] [--cache DIR]
                   [--cold] [--keep] [--refresh-root]
       ci-local.py shell --command 'make demo' [--host RELEASE] [--cold]

No container daemon is needed: the job's container image (debian:RELEASE) is stood
in for by a minimal Debian root made with mmdebstrap from this host's Debian
archive (scripts/apt-private.py --sources), unpacked fresh for every run.  /proc,
/sys and /dev (with /dev/kvm) are bound into it, the repository's HEAD is cloned
into it (a clean clone, as actions/checkout gives), and the job's steps are run in
it one by one: `uses: ./` expands to action.yml's steps with the job's `with:`
inputs; GITHUB_ENV, GITHUB_OUTPUT and GITHUB_STEP_SUMMARY work as on a runner.
actions/cache is stood in for by DIR (default BARMAP_CACHE/ci-local/RELEASE/cache)
bound at the workflow's BARMAP_CACHE path, so a second run is the warm one;
upload-artifact steps are reported, not run.  Prints each step's time and the total.
``--cold`` empties that cache first.  ``shell`` runs one command on such a fresh
machine after a clean checkout (the README's ``make demo`` from nothing, say).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TOP = Path(__file__).resolve().parents[1]
try:
    import yaml
except ImportError:  # a Python without PyYAML: the project's venv has it (yamllint's)
    venv = TOP / ".venv/bin/python"
    if venv.is_file() and Path(sys.executable).resolve() != venv.resolve():
        os.execv(str(venv), [str(venv), *sys.argv])
    sys.exit("ci-local: needs PyYAML: `make venv` or `scripts/deps.sh ci-local` (python3-yaml)")


def _paths() -> Any:
    """harness/barmap/paths.py on its own (standard library only: no venv needed)."""
    spec = importlib.util.spec_from_file_location("barmap_paths", TOP / "harness/barmap/paths.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cache_dir = _paths().cache_dir

EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOST_CA = "/etc/ssl/ci-local-host-ca.crt"  # Root.trust_the_hosts_network
NETWORK_ENV = ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
WORKSPACE = "/__w/barmap/barmap"  # where a container job's checkout lands
TEMP = "/__w/_temp"


class StepError(Exception):
    pass


class Context:
    """What `${{ }}` expressions may name: matrix, inputs, env, runner, github, steps."""

    def __init__(self, matrix: dict[str, str], env: dict[str, str]) -> None:
        self.matrix = matrix
        self.env = env
        self.inputs: dict[str, str] = {}
        self.steps: dict[str, dict[str, str]] = {}
        self.failed = False

    def value(self, expr: str) -> str:
        head, _, rest = expr.partition(".")
        if head == "matrix":
            return self.matrix.get(rest, "")
        if head == "inputs":
            return self.inputs.get(rest, "")
        if head == "env":
            return self.env.get(rest, "")
        if expr == "runner.temp":
            return TEMP
        if expr in ("github.workspace", "github.action_path"):
            return WORKSPACE
        if expr == "github.event_name":
            return "workflow_dispatch"
        if expr == "github.ref":
            return "refs/heads/main"
        if expr == "github.job":
            return "local"
        m = re.fullmatch(r"steps\.([\w-]+)\.outputs\.([\w-]+)", expr)
        if m:
            return self.steps.get(m[1], {}).get(m[2], "")
        raise StepError(f"ci-local: expression not understood: {expr}")

    def sub(self, text: Any) -> str:
        return EXPR.sub(lambda m: self.value(m[1]), str(text))

    def cond(self, cond: Any) -> bool:
        """The `if:` forms the workflow and the action use."""
        if cond is None:
            return not self.failed
        text = EXPR.sub(lambda m: m[1], str(cond)).strip()
        if text == "always()":
            return True
        if text == "failure()":
            return self.failed
        if self.failed:
            return False
        ors = [part.strip() for part in text.split("||")]
        for part in ors:
            m = re.fullmatch(r"([\w.-]+)\s*(==|!=)\s*'([^']*)'", part)
            if not m:
                raise StepError(f"ci-local: condition not understood: {cond}")
            equal = self.value(m[1]) == m[3]
            if equal == (m[2] == "=="):
                return True
        return False


def parse_env_file(text: str) -> dict[str, str]:
    """GITHUB_ENV / GITHUB_OUTPUT: NAME=value lines and NAME<<DELIM blocks."""
    out: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delim = line.split("<<", 1)
            block = []
            while i < len(lines) and lines[i] != delim:
                block.append(lines[i])
                i += 1
            i += 1
            out[name] = "\n".join(block)
        elif "=" in line:
            name, value = line.split("=", 1)
            out[name] = value
    return out


class Root:
    """A fresh Debian root with /proc, /sys, /dev and the cache bound in."""

    def __init__(self, release: str, cache: Path, refresh: bool) -> None:
        self.release = release
        self.base = cache_dir() / "ci-local" / release
        self.tarball = self.base / "root.tar"
        self.cache = cache
        self.refresh = refresh
        self.path = Path(tempfile.mkdtemp(prefix=f"barmap-ci-{release}-", dir="/var/tmp"))
        self.mounts: list[Path] = []
        self.network_env: dict[str, str] = {}

    def make_tarball(self) -> None:
        if self.tarball.is_file() and not self.refresh:
            return
        self.base.mkdir(parents=True, exist_ok=True)
        print(f"ci-local: mmdebstrap {self.release} (minbase, this host's Debian archive)")
        sources = subprocess.run([sys.executable, str(TOP / "scripts/apt-private.py"),
                                  "--sources", self.release],
                                 check=True, capture_output=True, text=True).stdout  # fmt: skip
        tmp = self.tarball.with_suffix(".tmp.tar")
        subprocess.run(["mmdebstrap", "--variant=minbase", "--quiet", self.release, str(tmp), "-"],
                       input=sources, text=True, check=True)  # fmt: skip
        tmp.replace(self.tarball)

    def __enter__(self) -> Root:
        self.make_tarball()
        subprocess.run(["tar", "-xf", str(self.tarball), "-C", str(self.path)], check=True)
        shutil.copy("/etc/resolv.conf", self.path / "etc/resolv.conf")
        self.trust_the_hosts_network()
        for src, opts in (("/proc", ["--bind"]), ("/sys", ["--rbind"]), ("/dev", ["--rbind"])):
            self.mount(Path(src), self.path / src.lstrip("/"), opts)
        self.cache.mkdir(parents=True, exist_ok=True)
        return self

    def trust_the_hosts_network(self) -> None:
        """The certificate authorities this host trusts, for the root's TLS clients (pip).

        A runner reaches the package indexes directly; this host may reach them
        through a proxy whose authority only its own bundle holds.  The bundle goes
        to HOST_CA in the root (NETWORK_ENV points pip, requests and OpenSSL at it)
        and the host's own authorities to the root's local ones, so a
        ca-certificates the job installs keeps them.  Nothing else of the host's.
        """
        bundle = Path(os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt")
        if not bundle.is_file():
            return
        dest = self.path / HOST_CA.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(bundle, dest)
        local = Path("/usr/local/share/ca-certificates")
        if local.is_dir():
            shutil.copytree(local, self.path / str(local).lstrip("/"), dirs_exist_ok=True)
        self.network_env = {name: HOST_CA for name in NETWORK_ENV}

    def mount(self, src: Path, dest: Path, opts: list[str]) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", *opts, str(src), str(dest)], check=True)
        if "--rbind" in opts:
            subprocess.run(["mount", "--make-rslave", str(dest)], check=True)
        self.mounts.append(dest)

    def bind_cache(self, at: str) -> None:
        self.mount(self.cache, self.path / at.lstrip("/"), ["--bind"])

    def processes(self) -> list[int]:
        """Processes whose root directory is this root (a step's leftovers)."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.readlink(entry / "root") == str(self.path):
                        found.append(int(entry.name))
                except OSError:
                    continue
        return found

    def __exit__(self, *exc: object) -> None:
        # nothing of the job outlives it (an interrupted step leaves its QEMUs): no
        # process keeps the root's mounts busy, none runs on in a deleted tree
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self.processes():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + 5
            while self.processes() and time.monotonic() < deadline:
                time.sleep(0.1)
        for dest in reversed(self.mounts):
            subprocess.run(["umount", "-R", "-l", str(dest)], check=False)
        if not os.environ.get("BARMAP_CI_KEEP"):
            shutil.rmtree(self.path, ignore_errors=True)


def run_steps(root: Root, ctx: Context, steps: list[dict[str, Any]], env: dict[str, str],
              timings: list[tuple[str, float, str]]) -> None:  # fmt: skip
    for step in steps:
        name = step.get("name") or step.get("uses") or step.get("run", "").splitlines()[0]
        if not ctx.cond(step.get("if")):
            timings.append((name, 0.0, "skipped"))
            continue
        uses = step.get("uses")
        if uses == "./":
            saved = ctx.inputs
            action = yaml.safe_load((TOP / "action.yml").read_text())
            ctx.inputs = {k: ctx.sub(v.get("default", "")) for k, v in action["inputs"].items()}
            ctx.inputs.update({k: ctx.sub(v) for k, v in (step.get("with") or {}).items()})
            run_steps(root, ctx, action["runs"]["steps"], env, timings)
            ctx.inputs = saved
            continue
        if uses:
            what = uses.split("@")[0]
            if what == "actions/checkout":
                start = time.monotonic()
                dest = root.path / WORKSPACE.lstrip("/")
                dest.parent.mkdir(parents=True, exist_ok=True)
                subprocess.run(["git", "clone", "-q", str(TOP), str(dest)], check=True)
                timings.append((name, time.monotonic() - start, "clean clone of HEAD"))
            elif what == "actions/cache":
                timings.append((name, 0.0, f"stood in for by {root.cache}"))
            else:
                timings.append((name, 0.0, "not run here"))
            continue
        start = time.monotonic()
        files = {k: root.path / TEMP.lstrip("/") / f"{k}-{len(timings)}" for k in
                 ("GITHUB_ENV", "GITHUB_OUTPUT")}  # fmt: skip
        for f in files.values():
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text("")
        step_env = {**root.network_env, **env}
        step_env.update({k: ctx.sub(v) for k, v in (step.get("env") or {}).items()})
        step_env.update({k: "/" + str(f.relative_to(root.path)) for k, f in files.items()})
        script = "set -eo pipefail\n" + ctx.sub(step["run"])
        cwd = ctx.sub(step.get("working-directory", WORKSPACE))
        print(f"ci-local: --- {name}", flush=True)
        rc = subprocess.run(["chroot", str(root.path), "/usr/bin/env", "-i",
                             *[f"{k}={v}" for k, v in step_env.items()],
                             "bash", "--noprofile", "--norc", "-c", f'cd "{cwd}" && {script}'],
                            check=False).returncode  # fmt: skip
        seconds = time.monotonic() - start
        env.update(parse_env_file(files["GITHUB_ENV"].read_text()))
        if step.get("id"):
            ctx.steps[step["id"]] = parse_env_file(files["GITHUB_OUTPUT"].read_text())
        timings.append((name, seconds, "ok" if rc == 0 else f"FAILED (exit {rc})"))
        if rc:
            ctx.failed = True


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "job",
        help="a job of .github/workflows/ci.yml (test, asan, fuzz, lint, ...), or `shell` with"
        " --command: that command in a fresh root, after a clean checkout",
    )
    p.add_argument("--command", help="for `shell`: what to run (bash) from the checkout")
    p.add_argument("--cold", action="store_true", help="start from an empty cache (deleted first)")
    p.add_argument("--qemu", help="matrix.qemu (default: the job's first)")
    p.add_argument("--kernel", help="matrix.kernel (default: the job's first)")
    p.add_argument("--host", help="the container's Debian release (default: the job's)")
    p.add_argument("--cache", type=Path, help="stands in for actions/cache")
    p.add_argument("--keep", action="store_true", help="keep the root afterwards")
    p.add_argument("--refresh-root", action="store_true", help="mmdebstrap the root anew")
    args = p.parse_args()
    # a terminated run cleans up as an interrupted one does (Root.__exit__)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if os.geteuid() != 0:
        print("ci-local: needs root (chroot, mounts)", file=sys.stderr)
        return 2
    if not shutil.which("mmdebstrap"):
        subprocess.run([str(TOP / "scripts/deps.sh"), "ci-local"], check=True)
    workflow = yaml.safe_load((TOP / ".github/workflows/ci.yml").read_text())
    if args.job == "shell":
        # a machine as fresh as a job's: a clean clone, then the command (e.g. `make demo`)
        if not args.command:
            print("ci-local: `shell` needs --command", file=sys.stderr)
            return 2
        workflow["jobs"]["shell"] = {
            "container": {"image": f"debian:{args.host or 'bookworm'}"},
            "steps": [
                {"uses": "actions/checkout@local"},
                {"name": args.command, "run": args.command},
            ],
        }
    job = workflow["jobs"].get(args.job)
    if job is None:
        print(
            f"ci-local: no job '{args.job}' in ci.yml ({', '.join(workflow['jobs'])})",
            file=sys.stderr,
        )
        return 2
    axes = (job.get("strategy") or {}).get("matrix") or {}
    matrix = {
        k: str(v[0])
        for k, v in axes.items()
        if isinstance(v, list) and k not in ("include", "exclude")
    }
    for key, value in (("qemu", args.qemu), ("kernel", args.kernel), ("host", args.host)):
        if value:
            matrix[key] = value
    env = {"PATH": PATH, "HOME": "/github/home", "CI": "true", "GITHUB_ACTIONS": "true",
           "RUNNER_TEMP": TEMP, "GITHUB_WORKSPACE": WORKSPACE, "GITHUB_ACTION_PATH": WORKSPACE,
           "GITHUB_STEP_SUMMARY": f"{TEMP}/summary.md"}  # fmt: skip
    ctx = Context(matrix, env)
    env.update({k: ctx.sub(v) for k, v in (workflow.get("env") or {}).items()})
    env.update({k: ctx.sub(v) for k, v in (job.get("env") or {}).items()})
    image = ctx.sub(job.get("container", {}).get("image", "debian:bookworm"))
    release = image.split(":", 1)[1]
    cache = args.cache or cache_dir() / "ci-local" / release / "cache"
    if args.keep:
        os.environ["BARMAP_CI_KEEP"] = "1"
    if args.cold and cache.exists():
        shutil.rmtree(cache)
    timings: list[tuple[str, float, str]] = []
    start = time.monotonic()
    with Root(release, cache, args.refresh_root) as root:
        root.bind_cache(env["BARMAP_CACHE"])
        (root.path / "github/home").mkdir(parents=True, exist_ok=True)
        (root.path / TEMP.lstrip("/")).mkdir(parents=True, exist_ok=True)
        if not ctx.cond(job.get("if")):
            print(f"ci-local: job '{args.job}' would not run ({job['if']})")
        run_steps(root, ctx, job["steps"], env, timings)
        summary = root.path / TEMP.lstrip("/") / "summary.md"
        if summary.is_file():
            print(summary.read_text())
        total = time.monotonic() - start
        du = subprocess.run(["du", "-sh", str(cache)], capture_output=True, text=True).stdout
        if args.keep:
            print(f"ci-local: root kept at {root.path}")
    print(f"\nci-local: job {args.job} {matrix} in a fresh debian:{release} root")
    for name, seconds, note in timings:
        print(f"  {seconds:7.1f} s  {name}  [{note}]")
    print(f"  {total:7.1f} s  total; cache {du.split()[0] if du else '?'} at {cache}")
    return 1 if ctx.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
