"""Core benchmark: seqdl against PyTorch CPU, measured in the same run.

    python -m benchmarks.core [--repeats 5]

Rows: the letters CNN of the C++ original (training step at batch 64, inference
at batch 256), 2-layer GRU and LSTM language models (training step, one-step
sampling), peak memory of a GRU training step, and float32 GEMM throughput as
the ceiling both frameworks share. Every figure is the median of ``--repeats``
timed repetitions after a warm-up; ratios are seqdl / torch.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from . import cnn, rnn
from .table import format_table


def gemm(repeats: int, n: int = 1024) -> list[dict]:
    """float32 matrix-multiply throughput (GFLOP/s): the ceiling for conv and recurrent layers."""
    import torch

    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    ta = torch.from_numpy(a)

    def rate(fn) -> float:
        fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(5):
                fn()
            times.append((time.perf_counter() - start) / 5)
        return 2 * n**3 / statistics.median(times) / 1e9

    return [{"benchmark": f"GEMM float32 {n}x{n}", "unit": "GFLOP/s", "seqdl": rate(lambda: a @ a),
             "torch": rate(lambda: ta @ ta)}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import torch

    from seqdl.runtime import keep_freed_memory

    keep_freed_memory()  # for both frameworks: they share this process's allocator
    torch.set_num_threads(2)
    rows = cnn.run(args.repeats) + rnn.run(args.repeats) + gemm(args.repeats)
    print(f"seqdl vs torch {torch.__version__} (CPU, {torch.get_num_threads()} threads), "
          f"medians of {args.repeats} runs; ratio = seqdl / torch")
    print(format_table(rows))


if __name__ == "__main__":
    main()
