"""The ours-vs-PyTorch table every benchmark prints."""
from __future__ import annotations


def format_table(rows: list[dict]) -> str:
    """Rows of ``{benchmark, unit, seqdl, torch}`` (torch None: not measured); ratio = seqdl / torch."""
    header = f"{'benchmark':<44} {'unit':<22} {'seqdl':>12} {'torch':>12} {'ratio':>7}"
    lines = [header, "-" * len(header)]
    for row in rows:
        ratio = row["seqdl"] / row["torch"] if row["torch"] else float("nan")
        lines.append(f"{row['benchmark']:<44} {row['unit']:<22} {_number(row['seqdl']):>12} "
                     f"{_number(row['torch']):>12} {ratio:>6.2f}x")
    return "\n".join(lines)


def _number(value: float | None) -> str:
    """Counts as integers, small values (losses) with three decimals, large ones (throughputs) with one."""
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
