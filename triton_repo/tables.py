"""The one markdown table renderer, for every report the project prints (export checks, benchmarks, chaos).
Torch-free, so the load tester uses it too."""
from __future__ import annotations


def md_table(headers: list[str], rows: list[list]) -> list[str]:
    """A markdown table as lines: header, separator, one line per row (cells printed as they are)."""
    return ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)] + \
        ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
