#!/usr/bin/env python3
"""shellcheck every bash `run:` step of GitHub workflow and action files (make lint).

Usage: shellcheck-steps.py FILE...

Each step's script is checked as bash (the shell GitHub runs it with, `bash -e
-o pipefail`); a `${{ ... }}` expression, which GitHub substitutes before bash
sees the text, is checked as a plain word.  Exit status 1 when any step has a
finding, with the file and step name in the report.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import yaml

EXPR = re.compile(r"\$\{\{.*?\}\}")


def steps(doc: dict) -> Iterator[dict]:
    for job in (doc.get("jobs") or {}).values():
        yield from job.get("steps") or []
    yield from (doc.get("runs") or {}).get("steps") or []


def main(files: list[str]) -> int:
    bad = 0
    for name in files:
        doc = yaml.safe_load(Path(name).read_text())
        for i, step in enumerate(steps(doc)):
            if "run" not in step or step.get("shell", "bash") != "bash":
                continue
            label = step.get("name") or f"step {i + 1}"
            script = "#!/usr/bin/env bash\nset -eo pipefail\n" + EXPR.sub("EXPR", step["run"])
            with tempfile.NamedTemporaryFile("w", suffix=".sh") as f:
                f.write(script)
                f.flush()
                out = subprocess.run(["shellcheck", "-s", "bash", f.name],
                                     capture_output=True, text=True, check=False)  # fmt: skip
            if out.returncode:
                bad += 1
                print(f"{name}: {label}:\n{out.stdout.replace(f.name, label)}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
