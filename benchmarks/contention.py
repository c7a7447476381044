"""Throughput on a shared machine: idle, next to another ML job, next to busy loops; seqdl and PyTorch.

    python -m benchmarks.contention [--repeats 3] [--json]

Each cell runs in a fresh process (so thread settings start clean) while the background load runs:

- ``idle``: nothing else;
- ``ml-job``: a PyTorch process with 2 threads multiplying small matrices in a loop (another user's ML job);
- ``busy-loops``: two plain Python busy loops, one per core.

Work, the same for both frameworks where PyTorch has it: sampling 300 characters one at a time from the
shipped text model; scoring 20,000 characters with it (batches of segments with carried state); one training
step of the textgen default model (GRU 2x512, batch 64x128); one training step of the letters CNN (the
C++ original's net, batch 128); a scan of 100 kbp of the shipped E. coli example repeated (seqdl only).
seqdl runs as its commands do (``seqdl.threads.ThreadPlan``: measured load, small work on one BLAS thread)
and with ``--threads 1``. Reported: median items/s over ``--repeats`` timings, and each load's ratio to idle.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LOADS = ("idle", "ml-job", "busy-loops")
WORKS = ("sampling", "eval text", "textgen train step", "letters train step", "scan")
IMPLS = ("seqdl", "seqdl --threads 1", "torch")

ML_JOB = """
import torch
torch.set_num_threads(2)
a, b = torch.randn(64, 256), torch.randn(256, 1024)
while True:
    a @ b
"""
BUSY_LOOP = "while True:\n    pass\n"


# ------------------------------------------------------------------ the work, in the measuring process
def _text_model():
    from pipelines.text_model import default_model_path, load_text_model
    net, vocab, _ = load_text_model(default_model_path())
    return net, vocab


def _torch_char_model(net):
    from benchmarks.textgen import torch_model
    import torch
    theirs = torch_model(net.config)
    theirs.load_state_dict({k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in net.state_dict().items()})
    return theirs.eval()


def sampling(impl: str) -> tuple[Callable[[], None], int]:
    net, vocab = _text_model()
    if impl == "torch":
        import torch
        theirs = _torch_char_model(net)

        def run() -> None:
            token, state = torch.zeros((1, 1), dtype=torch.long), None
            with torch.no_grad():
                for _ in range(300):
                    logits, state = theirs(token, state)
                    probs = torch.softmax(logits[-1, 0] / 0.8, -1)
                    token = torch.multinomial(probs, 1).reshape(1, 1)
        return run, 300
    from pipelines.text_model import SamplingOptions, generate
    options = SamplingOptions(length=300, num_samples=1)
    return (lambda: generate(net, vocab, "", options, np.random.default_rng(0))), 300


def eval_text(impl: str) -> tuple[Callable[[], None], int]:
    net, vocab = _text_model()
    ids = np.random.default_rng(0).integers(0, len(vocab), 20_000 + 1)
    if impl == "torch":
        import torch
        theirs = _torch_char_model(net)
        x = torch.from_numpy(ids[:-1].reshape(16, -1).T.copy())  # 16 segments, time-major as nn.GRU expects

        def run() -> None:
            with torch.no_grad():
                state = None
                for start in range(0, x.shape[0], 256):
                    _, state = theirs(x[start:start + 256], state)
        return run, 20_000
    from pipelines.text_eval import array_streams, mean_nats

    def run() -> None:  # streams are consumed as they are scored: new ones every time
        mean_nats(net, array_streams(ids, 0, len(ids), pieces=16, warmup=0, max_chars=None, first_input=int(ids[0])))
    return run, 20_000


def textgen_step(impl: str) -> tuple[Callable[[], None], int]:
    from pipelines.text_model import CharModel, ModelConfig
    config = ModelConfig(vocab_size=65)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 65, (64, 128)), rng.integers(0, 65, (64, 128))
    if impl == "torch":
        import torch
        from benchmarks.textgen import torch_model
        theirs = torch_model(config).train()
        opt = torch.optim.AdamW(theirs.parameters(), lr=1e-3)
        tx, ty = torch.from_numpy(x.T.copy()), torch.from_numpy(y.T.copy())

        def run() -> None:
            opt.zero_grad()
            logits, _ = theirs(tx)
            torch.nn.functional.cross_entropy(logits.reshape(-1, 65), ty.reshape(-1)).backward()
            opt.step()
        return run, x.size
    from pipelines.text_train import window_loss
    from seqdl.optim import AdamW
    from seqdl.training import PARTS, DataParallel
    ours = CharModel(config).train()
    opt = AdamW(ours.parameters(), lr=1e-3)
    parallel = DataParallel(ours, PARTS)  # as `seqdl textgen` trains: the batch in halves, side by side

    def run() -> None:
        opt.zero_grad()
        with parallel.scope():
            parallel.backward(window_loss, (x, y), len(x))
            opt.step()
    return run, x.size


def letters_step(impl: str) -> tuple[Callable[[], None], int]:
    from benchmarks.cnn import build_seqdl, build_torch
    rng = np.random.default_rng(0)
    x, y = rng.random((128, 1, 28, 28), dtype=np.float32), rng.integers(0, 26, 128)
    if impl == "torch":
        import torch
        theirs = build_torch().train()
        opt = torch.optim.AdamW(theirs.parameters(), lr=1e-3)
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)

        def run() -> None:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(theirs(tx), ty).backward()
            opt.step()
        return run, 128
    import seqdl
    from seqdl.nn import functional as F
    from seqdl.optim import AdamW
    ours = build_seqdl().train()
    opt = AdamW(ours.parameters(), lr=1e-3)

    def run() -> None:
        opt.zero_grad()
        F.cross_entropy(ours(seqdl.Tensor(x)), y).backward()
        opt.step()
    return run, 128


def scan(impl: str) -> tuple[Callable[[], None], int] | None:
    if impl == "torch":
        return None
    import tempfile
    from pipelines.scan import ScanOptions, scan_files
    from pipelines.dna_model import default_model_path
    example = ROOT / "data" / "examples" / "ecoli-k12-mg1655-8kb.fa"
    sequence = "".join(line.strip() for line in example.read_text().splitlines() if not line.startswith(">"))
    work = Path(tempfile.mkdtemp())
    fasta = work / "g.fa"
    body = (sequence * (100_000 // len(sequence) + 1))[:100_000]
    fasta.write_text(">g\n" + "\n".join(body[i:i + 80] for i in range(0, len(body), 80)) + "\n")

    def run() -> None:
        scan_files([fasta], default_model_path(), work / "g.parquet", ScanOptions(threads=_plan().threads("large")),
                   quiet=True)
    return run, 100_000


WORK_FUNCTIONS = {"sampling": sampling, "eval text": eval_text, "textgen train step": textgen_step,
                  "letters train step": letters_step, "scan": scan}
WORK_KIND = {"sampling": "small", "eval text": "large", "textgen train step": "large",
             "letters train step": "large", "scan": "large"}
_PLAN = None


def _plan():
    return _PLAN


def measure(work: str, impl: str, repeats: int) -> float | None:
    """Items/s of ``work`` in this process, median of ``repeats`` timings after one warm-up."""
    global _PLAN
    if impl == "torch":
        import torch
        torch.set_num_threads(2)
    from seqdl.runtime import keep_freed_memory
    from seqdl.threads import ThreadPlan
    keep_freed_memory()
    _PLAN = ThreadPlan(override=1 if impl == "seqdl --threads 1" else None).measure()
    if impl == "torch":
        built = WORK_FUNCTIONS[work](impl)
        return None if built is None else _median_rate(*built, repeats)
    with _PLAN.use(WORK_KIND[work]):   # built inside the plan, as a command builds its work (training in parts)
        built = WORK_FUNCTIONS[work](impl)
        return None if built is None else _median_rate(*built, repeats)


def _median_rate(run: Callable[[], None], items: int, repeats: int) -> float:
    run()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return items / statistics.median(times)


# ------------------------------------------------------------------ the driver
def _start_load(load: str) -> list[subprocess.Popen]:
    if load == "idle":
        return []
    if load == "ml-job":
        return [subprocess.Popen([sys.executable, "-c", ML_JOB])]
    return [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(2)]


def _cell(work: str, impl: str, repeats: int) -> float | None:
    out = subprocess.run([sys.executable, "-m", "benchmarks.contention", "--cell", work, impl, str(repeats)],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["items_per_second"]


def run_all(repeats: int, works: list[str]) -> list[dict]:
    rows = []
    for load in LOADS:
        background = _start_load(load)
        try:
            time.sleep(1.0 if background else 0)
            for work in works:
                for impl in IMPLS:
                    rows.append({"load": load, "work": work, "impl": impl, "items_per_second": _cell(work, impl, repeats)})
                    print(json.dumps(rows[-1]), file=sys.stderr)
        finally:
            for process in background:
                process.kill()
                process.wait()
    idle = {(r["work"], r["impl"]): r["items_per_second"] for r in rows if r["load"] == "idle"}
    for row in rows:
        base = idle.get((row["work"], row["impl"]))
        row["ratio_to_idle"] = None if not base or row["items_per_second"] is None else row["items_per_second"] / base
    return rows


def format_rows(rows: list[dict]) -> str:
    """A Markdown table: one row per work and implementation, a column per load (ratio to idle)."""
    lines = ["| work | impl | " + " | ".join(LOADS) + " |", "|---|---|" + "---:|" * len(LOADS)]
    for work in dict.fromkeys(r["work"] for r in rows):
        for impl in IMPLS:
            cells = {r["load"]: r for r in rows if r["work"] == work and r["impl"] == impl}
            if all(c["items_per_second"] is None for c in cells.values()):
                continue
            entry = {"work": work, "impl": impl}
            for load in LOADS:
                c = cells.get(load)
                value = "" if c is None or c["items_per_second"] is None else f"{c['items_per_second']:,.0f}"
                if load != "idle" and c is not None and c["ratio_to_idle"] is not None:
                    value += f" ({c['ratio_to_idle']:.2f}×)"
                entry[load] = value
            lines.append("| " + " | ".join(entry[k] for k in ("work", "impl", *LOADS)) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", action="append", choices=WORKS, help="only this work (repeatable)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--cell", nargs=3, metavar=("WORK", "IMPL", "REPEATS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cell:
        work, impl, repeats = args.cell
        print(json.dumps({"items_per_second": measure(work, impl, int(repeats))}))
        return
    print(f"CPU: {_cpu_name()}, {os.cpu_count()} cores; items/s, median of {args.repeats}; (ratio to idle)",
          file=sys.stderr)
    rows = run_all(args.repeats, args.work or list(WORKS))
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        print(format_rows(rows))


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    main()
