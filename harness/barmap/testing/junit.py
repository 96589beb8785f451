"""A JUnit XML report as Markdown, for a CI job summary (``$GITHUB_STEP_SUMMARY``).

    python -m barmap.testing.junit build/junit-test.xml [--title NAME]

One line of counts, then each failed or errored test with the first lines of
its message and the artifacts the pytest plugin attached (console log, dmesg,
QMP events), so a red job says what broke without opening the raw log.
"""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

MESSAGE_LINES = 12


@dataclass
class Failure:
    name: str
    kind: str
    message: str
    artifacts: dict[str, str] = field(default_factory=dict)


@dataclass
class Summary:
    tests: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0
    seconds: float = 0.0
    failed: list[Failure] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return self.tests - self.failures - self.errors - self.skipped


def read(path: Path) -> Summary:
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    out = Summary()
    for suite in suites:
        out.seconds += float(suite.get("time", 0) or 0)
        for case in suite.iter("testcase"):
            out.tests += 1
            name = "::".join(x for x in (case.get("classname"), case.get("name")) if x)
            props = {p.get("name", ""): p.get("value", "") for p in case.iter("property")}
            for kind in ("failure", "error", "skipped"):
                node = case.find(kind)
                if node is None:
                    continue
                if kind == "skipped":
                    out.skipped += 1
                    break
                if kind == "failure":
                    out.failures += 1
                else:
                    out.errors += 1
                text = (node.get("message") or "") + "\n" + (node.text or "")
                out.failed.append(Failure(name, kind, text.strip(), props))
                break
    return out


def markdown(summary: Summary, title: str) -> str:
    verdict = "passed" if not summary.failed else "FAILED"
    lines = [
        f"### barmap {title}: {verdict}",
        "",
        f"{summary.passed} passed, {summary.failures} failed, {summary.errors} errors, "
        f"{summary.skipped} skipped in {summary.seconds:.0f} s",
    ]
    for f in summary.failed:
        lines += ["", f"<details><summary>{f.kind}: <code>{f.name}</code></summary>", "", "```"]
        lines += f.message.splitlines()[:MESSAGE_LINES]
        lines += ["```"]
        lines += [f"- {k}: `{v}`" for k, v in sorted(f.artifacts.items())]
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m barmap.testing.junit", description=__doc__.splitlines()[0]
    )
    p.add_argument("xml", type=Path)
    p.add_argument("--title", default="tests")
    args = p.parse_args(argv)
    try:
        summary = read(args.xml)
    except (OSError, ET.ParseError) as exc:
        print(f"barmap.testing.junit: cannot read {args.xml}: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(markdown(summary, args.title))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
