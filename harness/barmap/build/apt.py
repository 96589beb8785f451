#!/usr/bin/env python3
"""Set up a private apt state for one Debian suite, derived from this system's apt config.

Usage: apt.py DIR SUITE              write the state, print its apt-get options
       apt.py --sources SUITE         print the deb822 sources only (for mmdebstrap)

Reads the system's sources (deb822 ``*.sources`` and one-line ``*.list``) and keeps
the Debian archive entries of the system's own release and its ``-updates`` and
``-security`` pockets (not third-party repositories).  DIR/etc/sources.list.d/ gets
``deb`` and ``deb-src`` for SUITE and the same pockets on the same archives, so a
kernel or QEMU fixed in a point or security update is the one fetched.  Nothing
under /etc is changed and no host name is written into this repository: the
archive URIs come from the machine this runs on.  A host that is not Debian
(Ubuntu, Fedora) has no such entries; there BARMAP_DEBIAN_MIRROR (a Debian archive
URI) and BARMAP_DEBIAN_SECURITY (its security archive) name them explicitly, with
the keyring in BARMAP_DEBIAN_KEYRING.  Prints the apt-get options that select the
private state, one per line, for ``apt-get $(cat DIR/apt-opts)``.
"""

from __future__ import annotations

import glob
import os
import sys
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


def main() -> int:
    args = sys.argv[1:]
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    if args[0] == "--sources":
        text = sources_for(args[1])
        if text is None:
            return 1
        print(text.replace("Types: deb deb-src", "Types: deb"), end="")
        return 0
    state, suite = Path(args[0]).resolve(), args[1]
    text = sources_for(suite)
    if text is None:
        return 1
    for sub in (
        "etc/sources.list.d",
        "etc/preferences.d",
        "lists/partial",
        "cache/archives/partial",
    ):
        (state / sub).mkdir(parents=True, exist_ok=True)
    (state / "etc/sources.list.d/barmap.sources").write_text(text)
    opts = [
        f"-o Dir::Etc::SourceList={state}/etc/none.list",
        f"-o Dir::Etc::SourceParts={state}/etc/sources.list.d",
        f"-o Dir::Etc::PreferencesParts={state}/etc/preferences.d",
        f"-o Dir::State::Lists={state}/lists",
        f"-o Dir::State::status={state}/status",
        f"-o Dir::Cache={state}/cache",
        "-o APT::Get::List-Cleanup=0",
        "-o Debug::NoLocking=1",
        "-o APT::Sandbox::User=root",
    ]
    (state / "etc/none.list").touch()
    (state / "status").touch()
    (state / "apt-opts").write_text("\n".join(opts) + "\n")
    print("\n".join(opts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
