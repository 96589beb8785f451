"""Kernel failure markers on the console, after syzkaller's report parser (pkg/report/linux.go)."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Each marker is anchored on what the kernel prints at the start of the report.
MARKERS: tuple[tuple[str, str], ...] = (
    ("panic", r"Kernel panic - not syncing"),
    ("bug", r"\bBUG: "),
    ("kernel-bug", r"kernel BUG at "),
    ("warning", r"\bWARNING: .* at "),
    ("warning", r"\bWARNING: CPU: \d+ PID: \d+ at "),
    ("oops", r"\bOops: "),
    ("oops", r"\bOops\b.*\[#\d+\]"),
    ("gpf", r"general protection fault"),
    ("null-deref", r"Unable to handle kernel (NULL pointer dereference|paging request)"),
    ("hung-task", r"INFO: task .* blocked for more than \d+ seconds"),
    ("rcu-stall", r"INFO: rcu_(sched|preempt|bh) (self-)?detected( expedited)? stall"),
    ("rcu-stall", r"rcu: INFO: rcu_(sched|preempt) (self-)?detected"),
    ("soft-lockup", r"watchdog: BUG: soft lockup"),
    ("hard-lockup", r"watchdog: Watchdog detected hard LOCKUP"),
    ("ubsan", r"UBSAN: "),
    ("kasan", r"KASAN: "),
    ("kfence", r"KFENCE: "),
    ("kmemleak", r"kmemleak: \d+ new suspected memory leaks"),
    ("lockdep", r"WARNING: (possible circular locking|suspicious RCU usage|.*lock held)"),
    ("call-trace", r"^\s*Call Trace:"),
    ("stack-protector", r"stack-protector: Kernel stack is corrupted"),
)

_COMPILED = tuple((kind, re.compile(pattern, re.M)) for kind, pattern in MARKERS)
# One regex for a fast "anything at all?" test while streaming.
ANY_MARKER = re.compile("|".join(f"(?:{p})" for _, p in MARKERS), re.M)


@dataclass(frozen=True)
class CrashReport:
    kind: str
    line: str
    excerpt: str

    def __str__(self) -> str:
        return f"guest kernel {self.kind}: {self.line}"


def find_crash(text: str, context_lines: int = 40) -> CrashReport | None:
    """The first failure report in ``text`` with up to ``context_lines`` after it, or None."""
    first: tuple[int, str, re.Match[str]] | None = None
    for kind, regex in _COMPILED:
        m = regex.search(text)
        if m and (first is None or m.start() < first[0]):
            first = (m.start(), kind, m)
    if first is None:
        return None
    start, kind, _ = first
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", start)
    line = text[line_start : line_end if line_end >= 0 else len(text)].strip()
    lines = text[line_start:].splitlines()
    return CrashReport(kind=kind, line=line, excerpt="\n".join(lines[: context_lines + 1]))
