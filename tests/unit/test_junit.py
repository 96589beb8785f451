"""barmap.testing.junit: a real pytest run's JUnit XML turned into a job summary."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from barmap.testing.junit import main, markdown, read

SAMPLE = """
import pytest

def test_ok():
    pass

def test_bad(record_property):
    record_property("barmap_console", "/tmp/run/console.log")
    assert 0xFF == 0x00, "BAR2 read back all-ones"

@pytest.mark.skip(reason="no KVM")
def test_skipped():
    pass

@pytest.fixture
def broken():
    raise RuntimeError("VM died")

def test_error(broken):
    pass
"""


def run_sample(tmp_path: Path) -> Path:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    xml = tmp_path / "junit.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:barmap", "-p", "no:xdist",
                    "-p", "no:cacheprovider", f"--junitxml={xml}", str(tmp_path)],
                   cwd=tmp_path, capture_output=True, check=False)  # fmt: skip
    return xml


def test_counts_and_failures(tmp_path: Path) -> None:
    summary = read(run_sample(tmp_path))
    assert (summary.tests, summary.passed, summary.failures, summary.errors, summary.skipped) == (
        4, 1, 1, 1, 1,
    )  # fmt: skip
    by_name = {f.name.rsplit("::", 1)[-1]: f for f in summary.failed}
    assert by_name["test_bad"].kind == "failure"
    assert "BAR2 read back all-ones" in by_name["test_bad"].message
    assert by_name["test_bad"].artifacts == {"barmap_console": "/tmp/run/console.log"}
    assert by_name["test_error"].kind == "error" and "VM died" in by_name["test_error"].message


def test_markdown(tmp_path: Path) -> None:
    text = markdown(read(run_sample(tmp_path)), "test")
    assert text.startswith("### barmap test: FAILED\n")
    assert "1 passed, 1 failed, 1 errors, 1 skipped" in text
    assert "- barmap_console: `/tmp/run/console.log`" in text


def test_unreadable_report_is_one_line(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "bad.xml").write_text("<testsuite")
    assert main([str(tmp_path / "bad.xml")]) == 1
    assert capsys.readouterr().err.count("\n") == 1
