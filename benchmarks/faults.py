"""Kill the long-running commands with SIGKILL at random moments; check their files and that they resume.

    python -m benchmarks.faults --kills 20 --seed 0 [--command textgen|dna|scan] [--json]

For each command, trials run until ``--kills`` processes have been killed: a
trial starts the command fresh, kills it after a random delay (seeded; up to
1.1x the time an uninterrupted run takes, so kills land during start-up, corpus
or genome loading, training steps and checkpoint or output writes), and may kill
the resumed run again (1-3 kills per trial). After every kill each file in the
output directory must be complete and loadable (safetensors read in full,
Parquet read, caches parsed, BED/GFF3/bedGraph well formed); temp files are
counted (they must be gone after the next run). The trial then recovers the way
a user would: ``--resume`` when a checkpoint is there (``textgen``, ``train dna``),
a fresh run when the kill came before the first checkpoint, and a rerun for
``scan`` (whose trials start with the complete outputs of an earlier run in
place: after a kill they must still be there, whole). The recovered run must finish (exit 0) with exactly the parameters
(model, optimizer) or outputs of an uninterrupted reference run with the same seed.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow.parquet as pq

from seqdl.checkpoint import load
from seqdl.io import TEMP_SUFFIX

EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "examples" / "ecoli-k12-mg1655-8kb.fa"
# thrLABC operon and neighbours in the 8 kb example (RefSeq NC_000913.3 coordinates)
GENES = [("thrL", 190, 255, "+"), ("thrA", 337, 2799, "+"), ("thrB", 2801, 3733, "+"), ("thrC", 3734, 5020, "+"),
         ("yaaX", 5234, 5530, "+"), ("yaaA", 5683, 6459, "-"), ("yaaJ", 6529, 7959, "-")]
TEXT_STEPS, DNA_STEPS = 600, 120
CHECKPOINT_MINUTES = "0.002"  # about every 0.1 s: a kill often lands in or just after a checkpoint write


# ------------------------------------------------------------------ inputs
def make_inputs(root: Path) -> None:
    rng = np.random.default_rng(0)
    words = "to be or not that is the question whether tis nobler in the mind suffer slings arrows".split()
    (root / "corpus.txt").write_text("\n".join(" ".join(rng.choice(words, 9)) for _ in range(3000)) + "\n")
    (root / "genes.gff").write_text("##gff-version 3\n" + "".join(
        f"NC_000913.3\tRefSeq\tCDS\t{start}\t{end}\t.\t{strand}\t0\tID={name}\n" for name, start, end, strand in GENES))
    with open(root / "genome.fa", "w") as handle:
        for record in range(4):
            seq = "".join(rng.choice(list("ACGT"), 250_000))
            handle.write(f">chr{record}\n" + "\n".join(seq[i:i + 80] for i in range(0, len(seq), 80)) + "\n")
    tiny_dna_model(root / "dna.safetensors")


def tiny_dna_model(path: Path) -> None:
    import seqdl
    from pipelines.dna_model import KIND, DnaConfig, DnaModel
    from seqdl import checkpoint

    seqdl.manual_seed(0)
    model = DnaModel(DnaConfig(channels=4, hidden=4, lm_hidden=4, tile=50, context=10))
    checkpoint.save(path, model, config=model.config.to_dict(), kind=KIND)


# ---------------------------------------------------------------- commands
@dataclass
class Command:
    name: str
    fresh: Callable[[Path, Path], list[str]]   # (inputs, workdir) -> arguments of a new run
    resume: Callable[[Path, Path], list[str]] | None  # arguments to continue; None: rerun fresh
    model: str | None  # the model file name, for commands that train

    def checkpoint(self, work: Path) -> Path | None:
        return work / self.model.replace(".safetensors", ".checkpoint.safetensors") if self.model else None


def textgen_args(inputs: Path, work: Path) -> list[str]:
    return ["textgen", str(inputs / "corpus.txt"), "--model", str(work / "m.safetensors"), "--hidden", "32",
            "--layers", "1", "--embed", "8", "--seq-len", "24", "--batch-size", "8", "--steps", str(TEXT_STEPS),
            "--eval-every", "50", "--checkpoint-minutes", CHECKPOINT_MINUTES, "--seed", "1", "--length", "20",
            "--quiet"]


def dna_args(inputs: Path, work: Path) -> list[str]:
    return ["train", "dna", "--fasta", str(EXAMPLE), "--annotation", str(inputs / "genes.gff"), "--out",
            str(work / "d.safetensors"), "--channels", "4", "--hidden", "4", "--lm-hidden", "4", "--seq-len", "200",
            "--batch-size", "8", "--steps", str(DNA_STEPS), "--eval-every", "10", "--checkpoint-minutes",
            CHECKPOINT_MINUTES, "--seed", "1", "--quiet"]


def scan_args(inputs: Path, work: Path) -> list[str]:
    return ["scan", str(inputs / "genome.fa"), "--model", str(inputs / "dna.safetensors"), "--out",
            str(work / "s.parquet"), "--bed", str(work / "g.bed"), "--gff", str(work / "g.gff3"), "--bedgraph",
            str(work / "t"), "--quiet"]


COMMANDS = {
    "textgen": Command("textgen", textgen_args, lambda i, w: textgen_args(i, w) + ["--resume"], "m.safetensors"),
    "dna": Command("train dna", dna_args, lambda i, w: dna_args(i, w) + ["--resume"], "d.safetensors"),
    "scan": Command("scan", scan_args, None, None),
}


# ---------------------------------------------------------------- checking
COLUMNS = {".bed": 6, ".bedgraph": 4, ".gff3": 9}


def check_file(path: Path) -> str | None:
    """Why ``path`` is not a complete, loadable file of its kind (None if it is)."""
    try:
        if path.suffix == ".safetensors":
            load(path)
        elif path.suffix == ".parquet":
            pq.read_table(path)
        elif path.suffix == ".npy":
            np.load(path, mmap_mode="r").sum()
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix in COLUMNS:
            text = path.read_text()
            if text and not text.endswith("\n"):
                return "last line cut short"
            lines = [line for line in text.splitlines() if line and not line.startswith(("#", "track"))]
            if any(len(line.split("\t")) != COLUMNS[path.suffix] for line in lines):
                return "a line with the wrong number of columns"
            if path.suffix == ".gff3" and not text.startswith("##gff-version 3"):
                return "no ##gff-version line"
        else:
            return "unexpected file"
    except Exception as exc:  # noqa: BLE001 - any failure to load is what we count
        return f"{type(exc).__name__}: {exc}"
    return None


def is_temp(path: Path) -> bool:
    """Our temp files, and any other writer's (``.tmpXXXXXX``, as Rust's tempfile names them)."""
    return path.name.endswith(TEMP_SUFFIX) or path.name.startswith(".tmp")


def survey(work: Path) -> tuple[list[str], int]:
    """(problems with the files present, temp files present)."""
    problems, temps = [], 0
    for path in sorted(work.iterdir()):
        if is_temp(path):
            temps += 1
        elif (problem := check_file(path)) is not None:
            problems.append(f"{path.name}: {problem}")
    return problems, temps


def final_state(command: Command, work: Path) -> dict[str, object]:
    """What an uninterrupted run must also end with: tensors for training, outputs for scan."""
    if command.model:
        state = {}
        for name in (command.model, command.checkpoint(work).name):
            saved = load(work / name)
            state.update({f"{name}:{k}": v for k, v in saved.state_dict.items()})
            for index, values in (saved.optimizer_state or {}).get("state", {}).items():
                state.update({f"{name}:optimizer/{index}/{k}": v for k, v in values.items()})
        return state
    state = {"s.parquet": pq.read_table(work / "s.parquet").replace_schema_metadata(None)}
    state.update({p.name: p.read_bytes() for p in work.iterdir() if p.suffix in COLUMNS})
    return state


def same_state(a: dict[str, object], b: dict[str, object]) -> bool:
    if a.keys() != b.keys():
        return False
    for key, value in a.items():
        other = b[key]
        if isinstance(value, np.ndarray):
            if not np.array_equal(value, other):
                return False
        elif hasattr(value, "equals"):
            if not value.equals(other):
                return False
        elif value != other:
            return False
    return True


# ----------------------------------------------------------------- running
def run(args: list[str], kill_after: float | None, log: Path) -> tuple[bool, int | None]:
    """Run ``seqdl ARGS``; with ``kill_after``, SIGKILL it then. Returns (killed, exit code if it ended)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(log, "ab") as errors:
        process = subprocess.Popen([sys.executable, "-m", "seqdl.cli", *args], stdout=subprocess.DEVNULL,
                                   stderr=errors, env=env, start_new_session=True)
        try:
            code = process.wait(timeout=kill_after if kill_after is not None else 600)
            return False, code
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return True, None


def training_finished(command: Command, work: Path) -> bool:
    """Whether the checkpoint says the run had finished (resuming would start another budget's worth)."""
    saved = load(command.checkpoint(work))
    state = saved.metadata.get("seqdl.training") or {}
    if "cycle" in state:
        return bool(state["cycle"].get("finished"))
    return saved.step is not None and saved.step >= state.get("budget", {}).get("steps", float("inf"))


def recovery_args(command: Command, inputs: Path, work: Path) -> list[str] | None:
    """What a user runs after a kill; None when the run had already finished."""
    if command.resume is None:
        return command.fresh(inputs, work)
    ckpt = command.checkpoint(work)
    if ckpt.exists():
        return None if training_finished(command, work) else command.resume(inputs, work)
    args = command.fresh(inputs, work)  # killed before the first checkpoint: start again
    return args + ["--force"] if (work / command.model).exists() else args


@dataclass
class Tally:
    command: str
    kills: int = 0
    trials: int = 0
    files_checked: int = 0
    corrupt_files: int = 0
    temp_files_seen_after_kill: int = 0
    temp_files_left_after_recovery: int = 0
    resumes_started: int = 0
    recoveries_completed: int = 0
    recoveries_failed: int = 0
    final_state_matches: int = 0
    final_state_differs: int = 0
    reference_seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


def trial(command: Command, inputs: Path, work: Path, rng: random.Random, tally: Tally, reference: dict,
          remaining: int) -> None:
    log = work.parent / f"{work.name}.stderr"
    args = command.fresh(inputs, work)
    for _ in range(min(rng.randint(1, 3), remaining)):
        killed, code = run(args, rng.uniform(0.05, 1.1 * tally.reference_seconds), log)
        if killed:
            tally.kills += 1
            problems, temps = survey(work)
            tally.files_checked += sum(1 for p in work.iterdir() if not is_temp(p))
            tally.corrupt_files += len(problems)
            tally.temp_files_seen_after_kill += temps
            tally.problems += [f"kill {tally.kills}: {p}" for p in problems]
            if command.resume is None and not same_state(final_state(command, work), reference):
                tally.corrupt_files += 1
                tally.problems.append(f"kill {tally.kills}: the previous outputs were not left intact")
        elif code != 0:
            tally.recoveries_failed += 1
            tally.problems.append(f"exit {code} without a kill: {log.read_text()[-300:]}")
            return
        args = recovery_args(command, inputs, work)
        if args is None or not killed:
            break
        tally.resumes_started += "--resume" in args
    if args is not None:
        killed, code = run(args, None, log)
        if code != 0:
            tally.recoveries_failed += 1
            tally.problems.append(f"recovery exit {code}: {log.read_text()[-300:]}")
            return
    tally.recoveries_completed += 1
    tally.temp_files_left_after_recovery += survey(work)[1]
    if same_state(final_state(command, work), reference):
        tally.final_state_matches += 1
    else:
        tally.final_state_differs += 1
        tally.problems.append(f"trial {tally.trials}: final state differs from the uninterrupted run")


def inject(name: str, kills: int, seed: int, inputs: Path, scratch: Path) -> Tally:
    command = COMMANDS[name]
    tally = Tally(command.name)
    reference_dir = scratch / f"{name}-reference"
    reference_dir.mkdir()
    started = time.perf_counter()
    _, code = run(command.fresh(inputs, reference_dir), None, scratch / f"{name}-reference.stderr")
    tally.reference_seconds = round(time.perf_counter() - started, 2)
    if code != 0:
        raise SystemExit(f"the uninterrupted {name} run failed: {(scratch / f'{name}-reference.stderr').read_text()}")
    reference = final_state(command, reference_dir)
    rng = random.Random(f"{seed}-{name}")
    while tally.kills < kills:
        work = scratch / f"{name}-{tally.trials}"
        if command.resume is None:  # a rerun overwrites: the previous complete outputs must survive a kill
            shutil.copytree(reference_dir, work)
        else:
            work.mkdir()
        trial(command, inputs, work, rng, tally, reference, kills - tally.kills)
        tally.trials += 1
        shutil.rmtree(work)
    return tally


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs per command")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--command", action="append", choices=sorted(COMMANDS), help="default: all")
    parser.add_argument("--json", action="store_true", help="one JSON object per command")
    args = parser.parse_args()
    failed = False
    with tempfile.TemporaryDirectory() as scratch:
        inputs = Path(scratch) / "inputs"
        inputs.mkdir()
        make_inputs(inputs)
        for name in args.command or list(COMMANDS):
            tally = inject(name, args.kills, args.seed, inputs, Path(scratch))
            failed |= bool(tally.corrupt_files or tally.recoveries_failed or tally.final_state_differs
                           or tally.temp_files_left_after_recovery)
            if args.json:
                print(json.dumps(tally.__dict__), flush=True)
            else:
                print(f"{tally.command:<10} {tally.kills} kills in {tally.trials} trials (uninterrupted run "
                      f"{tally.reference_seconds:.1f} s): {tally.files_checked} files checked, {tally.corrupt_files} "
                      f"corrupt; {tally.temp_files_seen_after_kill} temp files after kills, "
                      f"{tally.temp_files_left_after_recovery} after recovery; {tally.resumes_started} resumes; "
                      f"{tally.recoveries_completed}/{tally.trials} recoveries completed, "
                      f"{tally.final_state_matches} identical to the uninterrupted run", flush=True)
                for problem in tally.problems:
                    print(f"  {problem}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
