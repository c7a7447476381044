"""The README's reliability table: bad inputs per command, faults injected and survived, fuzz cases.

    python -m benchmarks.fuzz --cases 10000 --json > fuzz.jsonl
    python -m benchmarks.faults --kills 25 --json > faults.jsonl
    python -m benchmarks.reliability --fuzz fuzz.jsonl --faults faults.jsonl

The bad-input rows come from running ``tests/test_bad_inputs.py`` now (each
case: exit code 2, one ``seqdl: error:`` line naming the file or option, no
traceback, no file written); the fault and fuzz rows from the JSON Lines those
two scripts print. Nothing in the table is typed by hand.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1] / "tests"


class _Outcomes:
    """A pytest plugin that records the outcome of each test whose name contains ``name``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.outcomes: dict[str, str] = {}

    def pytest_runtest_logreport(self, report) -> None:
        if self.name not in report.nodeid:
            return
        case = report.nodeid.split("[", 1)[-1].rstrip("]")
        if report.when == "call" or report.outcome != "passed":
            self.outcomes[case] = "known bug" if hasattr(report, "wasxfail") else report.outcome


def run_tests(test_file: str, name: str) -> dict[str, str]:
    """Run the tests of ``test_file`` whose name contains ``name``; their outcomes by parameter id."""
    plugin = _Outcomes(name)
    with contextlib.redirect_stdout(sys.stderr):  # pytest's report is a diagnostic; stdout is the table
        pytest.main([str(TESTS / test_file), "-q", "-p", "no:cacheprovider", "-k", name], plugins=[plugin])
    return plugin.outcomes


def bad_input_rows() -> list[tuple[str, int, int, int]]:
    """(command, cases, handled cleanly, known bugs) per command, from running the test now."""
    spec = importlib.util.spec_from_file_location("test_bad_inputs", TESTS / "test_bad_inputs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    outcomes = run_tests("test_bad_inputs.py", "test_bad_input_is_one_line")
    totals, clean, bugs = Counter(), Counter(), Counter()
    for case in module.CASES:
        outcome = outcomes.get(case.name, "not run")
        totals[case.command] += 1
        clean[case.command] += outcome == "passed"
        bugs[case.command] += outcome == "known bug"
    return [(command, totals[command], clean[command], bugs[command]) for command in totals]


def disk_full_row() -> tuple[str, int, int, int]:
    """Writes failing as on a full disk (``tests/test_faults.py``): clean one-line error, nothing left."""
    outcomes = run_tests("test_faults.py", "test_disk_full")
    values = list(outcomes.values())
    return ("disk full (writes fail)", len(values), values.count("passed"), values.count("known bug"))


def read_jsonl(path: Path | None) -> list[dict]:
    if path is None or not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def table(rows: list[tuple], header: tuple[str, ...]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header)))
             + "|"]
    lines += ["| " + " | ".join(f"{v:,}" if isinstance(v, int) else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fuzz", type=Path, help="JSON Lines from python -m benchmarks.fuzz --json")
    parser.add_argument("--faults", type=Path, help="JSON Lines from python -m benchmarks.faults --json")
    args = parser.parse_args()

    rows = bad_input_rows()
    total = tuple(sum(r[i] for r in rows) for i in (1, 2, 3))
    disk_full = disk_full_row()
    out = ["Bad inputs (`tests/test_bad_inputs.py`: exit code 2, one `seqdl: error:` line naming the file or option,\n"
           "no traceback, no file or temp file written):", "",
           table(rows + [("**all commands**", *total), disk_full],
                 ("command", "bad inputs tried", "handled cleanly", "known bugs (xfail)"))]
    faults = read_jsonl(args.faults)
    if faults:
        fault_rows = [(f["command"], f["kills"], f["files_checked"], f["corrupt_files"],
                       f"{f['recoveries_completed']}/{f['trials']}", f"{f['final_state_matches']}/{f['trials']}",
                       f["temp_files_left_after_recovery"]) for f in faults]
        out += ["", "SIGKILL at seeded random moments (`benchmarks/faults.py`), then `--resume` (or a rerun):", "",
                table(fault_rows, ("command", "kills", "files checked after kills", "corrupt or truncated",
                                   "recoveries finished", "same result as an uninterrupted run",
                                   "temp files left"))]
    fuzz = read_jsonl(args.fuzz)
    if fuzz:
        fuzz_rows = [(f["reader"], f["cases"], f["ok"], f["seqdl_error"], f["other_exception"],
                      f"{f['slowest_case_seconds'] * 1000:.0f} ms") for f in fuzz]
        out += ["", "Fuzzed readers (`benchmarks/fuzz.py`: mutated valid files and random bytes):", "",
                table(fuzz_rows, ("reader", "cases", "read", "refused with a seqdl error", "other exception (bug)",
                                  "slowest case"))]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
