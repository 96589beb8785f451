#!/usr/bin/env python3
"""barmap's one private apt client: a private apt state for one Debian suite, derived
from this system's apt config, and the few things barmap asks of it.

Usage (DIR is the state directory; each apt run's output is DIR/WHAT.log, the last one's):
  apt.py state DIR SUITE [--arch ARCH]...  write the state, print its apt-get options
  apt.py DIR SUITE                         the same (the older form)
  apt.py update DIR                        refresh the package lists (update.log)
  apt.py download DIR PKG... --to D        the .debs of PKG[:ARCH][=VERSION] into D
  apt.py source DIR PKG --to D [--download-only]
                                           the newest source the pool holds (an index
                                           can list one it does not), unpacked in D;
                                           prints VERSION and the tree (or D)
  apt.py depends DIR PKG [--prefix P]      the candidate's direct Depends, one a line
  apt.py version DIR PKG                   the candidate version of a binary package
  apt.py srcversion DIR PKG                the newest version of a source package
  apt.py --sources SUITE                   print the deb822 sources only (for mmdebstrap)

Every failure is one line on stderr, ``apt.py: WHAT (log: FILE)``, and exit status 1
(2: bad usage).  Python callers use the functions of the same names (``state``,
``update``, ``download``, ``print_uris``, ``show``, ``version``, ``depends``,
``source_versions``, ``source``), which raise AptError with that line.

Reads the system's sources (deb822 ``*.sources`` and one-line ``*.list``) and keeps
the Debian archive entries of the system's own release and its ``-updates`` and
``-security`` pockets (not third-party repositories).  DIR/etc/sources.list.d/ gets
``deb`` and ``deb-src`` for SUITE and the same pockets on the same archives, so a
kernel or QEMU fixed in a point or security update is the one fetched.  Nothing
under /etc is changed and no host name is written into this repository: the
archive URIs come from the machine this runs on.  A host that is not Debian
(Ubuntu, Fedora) has no such entries; there BARMAP_DEBIAN_MIRROR (a Debian archive
URI) and BARMAP_DEBIAN_SECURITY (its security archive) name them explicitly, with
the keyring in BARMAP_DEBIAN_KEYRING.  ``--arch`` adds foreign architectures
(APT::Architectures, the host's first): ``PKG:arm64`` then names the arm64 package,
a bare name the host's.  The apt-get options of the state are DIR/apt-opts, one a
line.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def deb822_entries(text: str) -> list[dict[str, str]]:
    entries: list[dict[str, str]] = []
    for para in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for raw in para.splitlines():
            if raw.startswith("#") or not raw.strip():
                continue
            if raw[0] in " \t" and key:
                fields[key] += " " + raw.strip()
                continue
            key, _, value = raw.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if fields:
            entries.append(fields)
    return entries


def one_line_entries(text: str) -> list[dict[str, str]]:
    entries: list[dict[str, str]] = []
    for raw in text.splitlines():
        words = raw.split("#", 1)[0].split()
        if len(words) < 3 or words[0] not in ("deb", "deb-src"):
            continue
        options: dict[str, str] = {}
        if words[1].startswith("["):
            opts = []
            while not words[1].endswith("]"):
                opts.append(words.pop(1))
            opts.append(words.pop(1))
            for opt in " ".join(opts).strip("[]").split():
                k, _, v = opt.partition("=")
                options[k.lower()] = v
        entry = {
            "types": words[0],
            "uris": words[1],
            "suites": words[2],
            "components": " ".join(words[3:]),
        }
        if "signed-by" in options:
            entry["signed-by"] = options["signed-by"]
        entries.append(entry)
    return entries


def system_entries() -> list[dict[str, str]]:
    entries: list[dict[str, str]] = []
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        entries += deb822_entries(Path(path).read_text())
    lists = ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]
    for path in lists:
        if os.path.exists(path):
            entries += one_line_entries(Path(path).read_text())
    return entries


POCKETS = ("", "-updates", "-security")
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
NOT_DEBIAN = """apt-private: {what}.
barmap fetches Debian's QEMU source and kernels (bookworm, trixie).  Run it on Debian 12/13,
or in a Debian container (e.g. a CI job with `container: debian:bookworm` and
`options: --device /dev/kvm`), or name a Debian archive explicitly:
  BARMAP_DEBIAN_MIRROR=<Debian archive URI> [BARMAP_DEBIAN_SECURITY=<security archive URI>]
  [BARMAP_DEBIAN_KEYRING=<keyring; default {keyring}>]"""


def os_release() -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in Path("/etc/os-release").read_text().splitlines():
        key, _, value = line.partition("=")
        fields[key] = value.strip().strip('"')
    return fields


def pocket_sources(codename: str) -> dict[str, tuple[list[str], str]]:
    """For each pocket ("", "-updates", "-security"): the archive URIs that
    serve it for this system's release, and their Signed-By."""
    found: dict[str, tuple[list[str], str]] = {}
    for e in system_entries():
        if e.get("enabled", "yes").lower() == "no" or "deb" not in e.get("types", "").split():
            continue
        if "main" not in e.get("components", "").split():
            continue
        for pocket in POCKETS:
            if codename + pocket not in e.get("suites", "").split():
                continue
            uris, signed_by = found.setdefault(pocket, ([], ""))
            uris += [u for u in e["uris"].split() if u not in uris]
            found[pocket] = (uris, signed_by or e.get("signed-by", ""))
    return found


def explicit_sources() -> dict[str, tuple[list[str], str]]:
    mirror = os.environ.get("BARMAP_DEBIAN_MIRROR", "")
    if not mirror:
        return {}
    keyring = os.environ.get("BARMAP_DEBIAN_KEYRING", DEBIAN_KEYRING)
    found = {"": ([mirror], keyring), "-updates": ([mirror], keyring)}
    security = os.environ.get("BARMAP_DEBIAN_SECURITY", "")
    if security:
        found["-security"] = ([security], keyring)
    return found


def deb822(suite: str, found: dict[str, tuple[list[str], str]], types: str) -> str:
    paras = []
    for pocket in POCKETS:
        if pocket not in found:
            continue
        uris, signed_by = found[pocket]
        lines = [
            f"Types: {types}",
            f"URIs: {' '.join(uris)}",
            f"Suites: {suite}{pocket}",
            "Components: main",
        ]
        if signed_by:
            lines.append(f"Signed-By: {signed_by}")
        paras.append("\n".join(lines) + "\n")
    return "\n".join(paras)


def sources_for(suite: str) -> str | None:
    osr = os_release()
    codename = osr.get("VERSION_CODENAME", "")
    found = explicit_sources()
    if not found and osr.get("ID") == "debian" and codename:
        found = pocket_sources(codename)
    if "" not in found:
        what = (
            f"this host's apt sources have no Debian '{codename}' main entry"
            if osr.get("ID") == "debian"
            else f"this host is {osr.get('PRETTY_NAME', 'unknown')}, not Debian"
        )
        print(NOT_DEBIAN.format(what=what, keyring=DEBIAN_KEYRING), file=sys.stderr)
        return None
    return deb822(suite, found, "deb deb-src")


StrPath = str | os.PathLike[str]


class AptError(Exception):
    """One readable line: what failed, and the log that says why."""


STATE_DIRS = ("etc/sources.list.d", "etc/preferences.d", "lists/partial", "cache/archives/partial")


def state(directory: StrPath, suite: str, arches: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Write the private state for SUITE in DIRECTORY; its apt-get options.  ``arches``
    adds foreign architectures to the host's (``PKG:ARCH`` then names their packages)."""
    root = Path(directory).resolve()
    text = sources_for(suite)
    if text is None:
        raise AptError(f"no Debian archive to fetch {suite} from (see above)")
    for sub in STATE_DIRS:
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "etc/sources.list.d/barmap.sources").write_text(text)
    opts = [
        f"-o Dir::Etc::SourceList={root}/etc/none.list",
        f"-o Dir::Etc::SourceParts={root}/etc/sources.list.d",
        f"-o Dir::Etc::PreferencesParts={root}/etc/preferences.d",
        f"-o Dir::State::Lists={root}/lists",
        f"-o Dir::State::status={root}/status",
        f"-o Dir::Cache={root}/cache",
        "-o APT::Get::List-Cleanup=0",
        "-o Debug::NoLocking=1",
        "-o APT::Sandbox::User=root",
    ]
    if arches:
        # the host's architecture stays the default one; a bare name is its package
        host = host_arch()
        opts.append(f"-o APT::Architectures={','.join(dict.fromkeys([host, *arches]))}")
    (root / "etc/none.list").touch()
    (root / "status").touch()
    (root / "apt-opts").write_text("\n".join(opts) + "\n")
    return opts


def host_arch() -> str:
    r = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True)
    return r.stdout.strip() or "amd64"


def options(directory: StrPath) -> list[str]:
    """The apt-get options of the state in DIRECTORY (``state`` must have made it)."""
    path = Path(directory).resolve() / "apt-opts"
    if not path.is_file():
        raise AptError(f"no private apt state in {path.parent} (apt.py state DIR SUITE first)")
    words = path.read_text().split()
    return words


def _log(directory: StrPath, name: str) -> Path:
    return Path(directory).resolve() / f"{name}.log"


def _run(
    directory: StrPath,
    tool: str,
    args: list[str],
    log: str,
    what: str,
    cwd: StrPath | None = None,
) -> str:
    """``tool OPTS args`` on the state; its stdout.  Output and errors go to DIR/LOG.log;
    a failure raises AptError(WHAT (log: ...))."""
    opts = options(directory)
    logfile = _log(directory, log)
    env = {**os.environ, "LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive"}
    with logfile.open("w") as out:
        out.write(f"$ {tool} {' '.join(args)}\n")
        out.flush()
        try:
            r = subprocess.run(
                [tool, *opts, *args],
                stdout=subprocess.PIPE,
                stderr=out,
                text=True,
                env=env,
                cwd=cwd,
            )
        except OSError as exc:
            raise AptError(f"{what}: {exc}") from None
        out.write(r.stdout)
    if r.returncode:
        raise AptError(f"{what} (log: {logfile})")
    return r.stdout


def update(directory: StrPath) -> None:
    """Refresh the state's package lists (DIR/update.log)."""
    _run(
        directory,
        "apt-get",
        ["-q", "update"],
        "update",
        "apt-get update failed (no archive, or bad lists)",
    )


def download(directory: StrPath, packages: list[str], to: StrPath) -> list[Path]:
    """The .debs of ``packages`` (``NAME[:ARCH][=VERSION]``) into ``to``; their paths."""
    dest = Path(to).resolve()
    dest.mkdir(parents=True, exist_ok=True)
    before = set(dest.glob("*.deb"))
    _run(
        directory,
        "apt-get",
        ["-q", "download", *packages],
        "download",
        f"cannot download {' '.join(packages)}",
        cwd=dest,
    )
    return sorted(set(dest.glob("*.deb")) - before) or sorted(dest.glob("*.deb"))


def print_uris(directory: StrPath, packages: list[str]) -> str:
    """``apt-get download --print-uris`` of ``packages``: ``'URI' FILE SIZE SHA256:HEX`` lines."""
    return _run(
        directory,
        "apt-get",
        ["-q", "download", "--print-uris", *packages],
        "download",
        f"apt names no .deb for {' '.join(packages)}",
    )


def show(directory: StrPath, package: str) -> dict[str, str]:
    """The candidate's record of a binary package (fields by their lower-case names)."""
    text = _run(
        directory,
        "apt-cache",
        ["show", "--no-all-versions", package],
        "query",
        f"the archive has no package {package}",
    )
    records = deb822_entries(text)
    if not records:
        raise AptError(f"the archive has no package {package}")
    return records[0]


def version(directory: StrPath, package: str) -> str:
    return show(directory, package)["version"]


def depends(directory: StrPath, package: str, prefix: str = "") -> list[str]:
    """The candidate's direct Depends (alternatives too), names without ``:ARCH``; a
    ``<NAME:ARCH>`` one (an Architecture: all package, as apt shows it to a foreign
    architecture's package) as NAME."""
    text = _run(
        directory,
        "apt-cache",
        ["depends", package],
        "query",
        f"the archive has no package {package}",
    )
    names = []
    for m in re.finditer(r"^\s*\|?Depends: (\S+)", text, re.M):
        name = m.group(1).strip("<>").split(":", 1)[0]
        if name.startswith(prefix) and name not in names:
            names.append(name)
    if not names and prefix:
        raise AptError(f"{package} depends on no {prefix}* (log: {_log(directory, 'query')})")
    return names


def source_versions(directory: StrPath, package: str) -> list[str]:
    """The versions of a source package the lists name, newest first."""
    text = _run(
        directory,
        "apt-cache",
        ["showsrc", package],
        "query",
        f"the archive has no source package {package}",
    )
    found = {m.group(1) for m in re.finditer(r"^Version: (\S+)", text, re.M)}
    if not found:
        where = _log(directory, "query")
        raise AptError(f"the archive has no source package {package} (log: {where})")
    out = subprocess.run(
        ["sort", "-Vr"], input="\n".join(found) + "\n", capture_output=True, text=True
    )
    return out.stdout.split()


def source(
    directory: StrPath, package: str, to: StrPath, download_only: bool = False
) -> tuple[str, Path]:
    """The newest source of ``package`` the archive's pool holds (an index can list a
    version its pool does not have: seen, bookworm-security's linux 6.1.192-3 and -2
    answered 404), into ``to``: (version, the unpacked tree, or ``to`` itself)."""
    dest = Path(to).resolve()
    dest.mkdir(parents=True, exist_ok=True)
    tried = []
    for v in source_versions(directory, package):
        work = Path(tempfile.mkdtemp(prefix=".src-", dir=dest))
        args = ["-q", *(["--download-only"] if download_only else []), "source", f"{package}={v}"]
        try:
            _run(
                directory,
                "apt-get",
                args,
                "source",
                f"cannot fetch the source of {package}",
                cwd=work,
            )
        except AptError:
            shutil.rmtree(work)
            tried.append(v)
            continue
        if download_only:
            for f in work.iterdir():
                f.rename(dest / f.name)
            work.rmdir()
            return v, dest
        trees = [d for d in work.iterdir() if d.is_dir()]
        if len(trees) != 1:
            shutil.rmtree(work)
            where = _log(directory, "source")
            raise AptError(f"{package}={v} unpacked to no one tree (log: {where})")
        tree = dest / trees[0].name
        if tree.exists():
            shutil.rmtree(tree)
        trees[0].rename(tree)
        shutil.rmtree(work)
        return v, tree
    raise AptError(
        f"no version of the {package} source package could be fetched, tried {' '.join(tried)} "
        f"(log: {_log(directory, 'source')})"
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    commands = ("state", "update", "download", "source", "depends", "version", "srcversion")
    if len(args) == 2 and args[0] not in commands and not args[0].startswith("-"):
        args = ["state", *args]  # the older form: apt.py DIR SUITE
    p = argparse.ArgumentParser(prog="apt.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--sources", metavar="SUITE", help="print the deb822 sources only")
    sub = p.add_subparsers(dest="cmd")
    s = sub.add_parser("state")
    s.add_argument("dir")
    s.add_argument("suite")
    s.add_argument("--arch", action="append", default=[])
    sub.add_parser("update").add_argument("dir")
    s = sub.add_parser("download")
    s.add_argument("dir")
    s.add_argument("packages", nargs="+")
    s.add_argument("--to", required=True)
    s = sub.add_parser("source")
    s.add_argument("dir")
    s.add_argument("package")
    s.add_argument("--to", required=True)
    s.add_argument("--download-only", action="store_true")
    s = sub.add_parser("depends")
    s.add_argument("dir")
    s.add_argument("package")
    s.add_argument("--prefix", default="")
    for name in ("version", "srcversion"):
        s = sub.add_parser(name)
        s.add_argument("dir")
        s.add_argument("package")
    a = p.parse_args(args)
    try:
        if a.sources:
            text = sources_for(a.sources)
            if text is None:
                return 1
            print(text.replace("Types: deb deb-src", "Types: deb"), end="")
        elif a.cmd == "state":
            print("\n".join(state(a.dir, a.suite, a.arch)))
        elif a.cmd == "update":
            update(a.dir)
        elif a.cmd == "download":
            for deb in download(a.dir, a.packages, a.to):
                print(deb)
        elif a.cmd == "source":
            v, tree = source(a.dir, a.package, a.to, a.download_only)
            print(f"{v} {tree}")
        elif a.cmd == "depends":
            print("\n".join(depends(a.dir, a.package, a.prefix)))
        elif a.cmd == "version":
            print(version(a.dir, a.package))
        elif a.cmd == "srcversion":
            print(source_versions(a.dir, a.package)[0])
        else:
            p.print_usage(sys.stderr)
            return 2
    except AptError as exc:
        print(f"apt.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
