#!/usr/bin/env python3
"""Set up a private apt state for one Debian suite, derived from this system's apt config.

Usage: apt-private.py DIR SUITE

Reads the system's sources (deb822 ``*.sources`` and one-line ``*.list``), keeps
the Debian archive entries of the system's own release (not -security, not
-updates, not third-party repositories), and writes DIR/etc/sources.list.d/
with ``deb`` and ``deb-src`` for SUITE on the same archive.  Nothing under /etc
is changed and no host name is written into this repository: the archive URI
comes from the machine this runs on.  Prints the apt-get options that select
the private state, one per line, for ``apt-get $(cat DIR/apt-opts)``.
"""

from __future__ import annotations

import glob
import os
import sys
from pathlib import Path


def os_codename() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip().strip('"')
    raise SystemExit("apt-private: no VERSION_CODENAME in /etc/os-release")


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
        entry = {"types": words[0], "uris": words[1], "suites": words[2],
                 "components": " ".join(words[3:])}
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


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    state, suite = Path(sys.argv[1]).resolve(), sys.argv[2]
    codename = os_codename()
    uris: list[str] = []
    signed_by = ""
    for e in system_entries():
        if e.get("enabled", "yes").lower() == "no" or "deb" not in e.get("types", "").split():
            continue
        if codename not in e.get("suites", "").split() or "main" not in e.get("components", ""):
            continue
        for uri in e["uris"].split():
            if uri not in uris:
                uris.append(uri)
        signed_by = signed_by or e.get("signed-by", "")
    if not uris:
        print(f"apt-private: no Debian '{codename}' main entry in this system's apt sources",
              file=sys.stderr)
        return 1
    for sub in ("etc/sources.list.d", "etc/preferences.d", "lists/partial",
                "cache/archives/partial"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    lines = ["Types: deb deb-src", f"URIs: {' '.join(uris)}", f"Suites: {suite}",
             "Components: main"]
    if signed_by:
        lines.append(f"Signed-By: {signed_by}")
    (state / "etc/sources.list.d/barmap.sources").write_text("\n".join(lines) + "\n")
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
