"""harness/barmap/build/apt.py: which archives a private apt state is built from.

The system's sources are parsed from text written here (deb822 and one-line);
/etc/os-release is replaced by a dict, so a Debian, an Ubuntu and a Debian with
an explicit mirror are all checked on this machine.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "harness" / "barmap" / "build" / "apt.py"

DEBIAN_SOURCES = """\
Types: deb
URIs: http://archive.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://vendor.example/apt
Suites: nodistro
Components: main
"""

UBUNTU_SOURCES = """\
Types: deb
URIs: mirror+file:/etc/apt/apt-mirrors.txt
Suites: noble noble-updates noble-security
Components: main universe
"""


@pytest.fixture
def apt_private() -> ModuleType:
    spec = importlib.util.spec_from_file_location("apt_private", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def host(
    mod: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    osr: dict[str, str],
    sources: str,
    one_line: str = "",
) -> None:
    monkeypatch.setattr(mod, "os_release", lambda: osr)
    entries = mod.deb822_entries(sources) + mod.one_line_entries(one_line)
    monkeypatch.setattr(mod, "system_entries", lambda: entries)
    for var in ("BARMAP_DEBIAN_MIRROR", "BARMAP_DEBIAN_SECURITY", "BARMAP_DEBIAN_KEYRING"):
        monkeypatch.delenv(var, raising=False)


DEBIAN = {"ID": "debian", "VERSION_CODENAME": "bookworm", "PRETTY_NAME": "Debian 12"}
UBUNTU = {
    "ID": "ubuntu",
    "ID_LIKE": "debian",
    "VERSION_CODENAME": "noble",
    "PRETTY_NAME": "Ubuntu 24.04.1 LTS",
}


def suites(text: str) -> list[tuple[str, str]]:
    paras = [dict(line.split(": ", 1) for line in p.splitlines()) for p in text.split("\n\n")]
    return [(p["Suites"], p["URIs"]) for p in paras]


def test_debian_gets_the_suite_and_its_updates_and_security(
    apt_private: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    host(apt_private, monkeypatch, DEBIAN, DEBIAN_SOURCES)
    text = apt_private.sources_for("trixie")
    assert suites(text) == [
        ("trixie", "http://archive.example/debian"),
        ("trixie-updates", "http://archive.example/debian"),
        ("trixie-security", "http://security.example/debian-security"),
    ]
    assert "vendor.example" not in text
    assert text.count("Types: deb deb-src") == 3


def test_one_line_sources_count_too(
    apt_private: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    host(
        apt_private,
        monkeypatch,
        DEBIAN,
        "",
        "deb [signed-by=/k.gpg] http://a.example/debian bookworm main\n"
        "deb http://s.example/debian-security bookworm-security main contrib\n",
    )
    assert suites(apt_private.sources_for("bookworm")) == [
        ("bookworm", "http://a.example/debian"),
        ("bookworm-security", "http://s.example/debian-security"),
    ]


def test_ubuntu_is_refused_with_the_way_out(
    apt_private: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    host(apt_private, monkeypatch, UBUNTU, UBUNTU_SOURCES)
    assert apt_private.sources_for("bookworm") is None
    err = capsys.readouterr().err
    assert "this host is Ubuntu 24.04.1 LTS, not Debian" in err
    assert "container: debian:bookworm" in err and "BARMAP_DEBIAN_MIRROR" in err


def test_an_explicit_mirror_works_anywhere(
    apt_private: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    host(apt_private, monkeypatch, UBUNTU, UBUNTU_SOURCES)
    monkeypatch.setenv("BARMAP_DEBIAN_MIRROR", "http://m.example/debian")
    monkeypatch.setenv("BARMAP_DEBIAN_SECURITY", "http://m.example/debian-security")
    text = apt_private.sources_for("bookworm")
    assert [s for s, _ in suites(text)] == ["bookworm", "bookworm-updates", "bookworm-security"]
    assert "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" in text


def test_the_state_directory(
    apt_private: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    host(apt_private, monkeypatch, DEBIAN, DEBIAN_SOURCES)
    monkeypatch.setattr("sys.argv", ["apt-private.py", str(tmp_path), "bookworm"])
    assert apt_private.main() == 0
    assert "bookworm-security" in (tmp_path / "etc/sources.list.d/barmap.sources").read_text()
    assert f"-o Dir::State::Lists={tmp_path}/lists" in (tmp_path / "apt-opts").read_text()
