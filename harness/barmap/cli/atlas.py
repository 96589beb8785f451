"""``barmap atlas``: every strategy through the scenario matrix."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from barmap.build.artifacts import find_artifacts
from barmap.build.paths import SUITES, kernel_suite
from barmap.cli import options
from barmap.cli.options import add_cli_vm_options


def cmd_atlas(args: argparse.Namespace) -> int:
    """Every strategy through the scenario matrix, on each kernel: JSON, Markdown, HTML."""
    from barmap.runs import atlas

    if args.render:  # the documents of an earlier run, again
        result = json.loads(args.render.read_text())
        _atlas_write(result, args.out, args.docs)
        return 0
    suites = args.suites.split(",") if args.suites else [args.suite or kernel_suite()]
    configs = {}
    for suite in suites:
        if suite not in SUITES:
            print(f"barmap atlas: unknown suite {suite!r} ({', '.join(SUITES)})", file=sys.stderr)
            return 2
        configs[suite] = options.config(
            args, find_artifacts(suite, args.qemu, None, None, args.boot)
        )
    plan = atlas.Plan(
        rows=tuple(args.rows.split(",")) if args.rows else (),
        scenarios=tuple(args.scenarios.split(",")) if args.scenarios else (),
        cycles=args.cycles,
    )
    log_dir = options.log_dir(args, "atlas")
    result = atlas.run(configs, plan, log_dir=log_dir,
                       progress=lambda s: print(f"barmap atlas: {s}", file=sys.stderr))  # fmt: skip
    out = args.out
    _atlas_write(result, out, args.docs)
    bad = [c for c in result["cells"] if c["verdict"] in ("error", "host")]
    print(f"barmap atlas: {len(result['cells'])} cells in {result['seconds']} s, "
          f"{len(bad)} the testbed could not run; {out.with_suffix('.html')}")  # fmt: skip
    return 1 if bad else 0


def _atlas_write(result: dict[str, Any], out: Path, docs: Path | None) -> None:
    from barmap.runs import atlas_report

    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text(atlas_report.to_markdown(result) + "\n")
    out.with_suffix(".html").write_text(atlas_report.to_html(result) + "\n")
    if docs:
        docs.write_text(atlas_report.docs_markdown(result) + "\n")


def register(sub: Any) -> None:
    p = sub.add_parser("atlas", help="every strategy through one scenario matrix (JSON/HTML)")
    add_cli_vm_options(p)
    p.add_argument("--suites", help="kernel suites, comma-separated (default: --suite's)")
    p.add_argument("--rows", help="strategies, comma-separated (default: all)")
    p.add_argument("--scenarios", help="scenarios, comma-separated (default: all)")
    p.add_argument("--cycles", type=int, default=200, help="race cycles per removal path")
    p.add_argument("--out", type=Path, default=Path("build/atlas.json"),
                    help="the JSON; .md and .html beside it (default: %(default)s)")  # fmt: skip
    p.add_argument("--docs", type=Path, help="also write the generated docs/atlas.md here")
    p.add_argument("--render", type=Path, metavar="JSON",
                    help="no run: the documents of an earlier run's JSON, again")  # fmt: skip
    p.set_defaults(func=cmd_atlas)
