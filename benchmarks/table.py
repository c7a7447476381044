"""The ours-vs-PyTorch table every benchmark prints."""
from __future__ import annotations


def format_table(rows: list[dict]) -> str:
    """Rows of ``{benchmark, unit, seqdl, torch}``; ratio = seqdl / torch."""
    header = f"{'benchmark':<44} {'unit':<22} {'seqdl':>12} {'torch':>12} {'ratio':>7}"
    lines = [header, "-" * len(header)]
    for row in rows:
        ratio = row["seqdl"] / row["torch"] if row["torch"] else float("nan")
        lines.append(f"{row['benchmark']:<44} {row['unit']:<22} {row['seqdl']:>12.1f} {row['torch']:>12.1f} {ratio:>6.2f}x")
    return "\n".join(lines)
