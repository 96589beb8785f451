"""Kernel failure markers on the console, after syzkaller's report parser (pkg/report/linux.go)."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Each marker is anchored on what the kernel prints at the start of the report.
MARKERS: tuple[tuple[str, str], ...] = (
    # most specific first: when several match on one line, the first listed names it
    ("panic", r"Kernel panic - not syncing"),
    ("soft-lockup", r"watchdog: BUG: soft lockup"),
    ("hard-lockup", r"watchdog: Watchdog detected hard LOCKUP"),
    ("kasan", r"KASAN: "),
    ("kfence", r"KFENCE: "),
    ("ubsan", r"UBSAN: "),
    ("hung-task", r"INFO: task .* blocked for more than \d+ seconds"),
    ("rcu-stall", r"INFO: rcu_(sched|preempt|bh) (self-)?detected( expedited)? stall"),
    ("rcu-stall", r"rcu: INFO: rcu_(sched|preempt) (self-)?detected"),
    ("lockdep", r"WARNING: (possible circular locking|suspicious RCU usage|.*lock held)"),
    ("kmemleak", r"kmemleak: \d+ new suspected memory leaks"),
    ("stack-protector", r"stack-protector: Kernel stack is corrupted"),
    ("kernel-bug", r"kernel BUG at "),
    ("null-deref", r"Unable to handle kernel (NULL pointer dereference|paging request)"),
    ("gpf", r"general protection fault"),
    ("warning", r"\bWARNING: .* at "),
    ("warning", r"\bWARNING: CPU: \d+ PID: \d+ at "),
    ("bug", r"\bBUG: "),
    ("oops", r"\bOops: "),
    ("oops", r"\bOops\b.*\[#\d+\]"),
    ("oops", r"\bInternal error: "),  # arm64's die(): an oops, an external abort
    ("call-trace", r"^(\[\s*\d+\.\d+\]\s*)?\s*Call [Tt]race:"),  # x86's, arm64's
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
    first: tuple[int, str] | None = None  # (start of the line, kind)
    for kind, regex in _COMPILED:
        m = regex.search(text)
        if m is None:
            continue
        line_start = text.rfind("\n", 0, m.start()) + 1
        if first is None or line_start < first[0]:
            first = (line_start, kind)
    if first is None:
        return None
    line_start, kind = first
    lines = text[line_start:].splitlines()
    return CrashReport(
        kind=kind, line=lines[0].strip(), excerpt="\n".join(lines[: context_lines + 1])
    )
