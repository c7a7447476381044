"""How many BLAS threads each kind of work gets, from the work's size and the cores we may really use.

OpenBLAS runs every product on all its threads, however small, and its threads spin while they wait for
one another. A one-row product (sampling a character, one recurrent step of a scan) gains nothing from a
second thread; next to another program that holds a core it loses a great deal, because the second thread
waits for a core the other program has. So:

- *small* work (sampling, per-step scoring, the scan's recurrent steps) runs on one BLAS thread, always;
- *large* work (training products) runs on the cores that are ours and free: the CPUs in our affinity
  mask, capped by the cgroup CPU quota, less what other processes are using when the command starts
  (measured from ``/proc/stat`` against our own CPU time over 50 ms);
- work split in *parts* that do not wait for one another (the halves of a recurrent model's training
  batch, :mod:`seqdl.training.parallel`) runs a thread per part on every core that is ours, busy or not:
  next to another program each part just runs slower, where a BLAS product would wait for its slowest
  thread at every barrier (a textgen step next to two busy loops: 2,300 chars/s on the free core alone,
  3,700 with a part on each core).

``--threads N`` overrides all three. threadpoolctl does the mechanics (it finds the BLAS that NumPy loaded and
sets its thread count through the library's own API, about 20 µs a switch).
"""
from __future__ import annotations

import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Literal, Sequence, TypeVar

Work = Literal["small", "large", "parts"]
PARTS = 2  # work split for the cores is split in this many parts: two cores are common, and a fixed split keeps
#            results the same on any machine (the parts run one after the other on one core)
T = TypeVar("T")
R = TypeVar("R")

_controller = None
_part_threads: int | None = None  # threads for side-by-side parts in the current ThreadPlan.use block


def _threadpools():  # noqa: ANN202 - threadpoolctl's controller, created once (it scans loaded libraries)
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController
        _controller = ThreadpoolController()
    return _controller


def affinity_cores() -> set[int]:
    """The CPUs this process may run on."""
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


def cgroup_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPU quota of our cgroup in cores (cgroup v2 ``cpu.max`` or v1 CFS files), or None if unlimited."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None


def usable_cores() -> int:
    """Cores we may use at all: the affinity mask, capped by the cgroup quota (rounded up, at least 1)."""
    cores = len(affinity_cores())
    quota = cgroup_quota()
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota - 0.05)))
    return max(1, cores)


def _busy_seconds(cpus: set[int]) -> float | None:
    """Seconds all of ``cpus`` have spent busy (anything but idle and iowait) since boot."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    busy = 0
    for line in lines:
        name, *values = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            counts = [int(v) for v in values[:8]]
            busy += sum(counts) - counts[3] - counts[4]
    return busy / ticks


def _own_seconds() -> float:
    times = os.times()
    return times.user + times.system


def blas_threads() -> int:
    """The BLAS thread count in force now (as a :meth:`ThreadPlan.use` block or ``--threads`` set it)."""
    counts = [p.get("num_threads") or 1 for p in _threadpools().info() if p.get("user_api") == "blas"]
    return max(counts, default=1)


def part_threads() -> int:
    """Threads for side-by-side parts: the current plan's (see :meth:`ThreadPlan.use`), else as many as BLAS may
    use now."""
    return blas_threads() if _part_threads is None else _part_threads


@contextmanager
def blas_limit(threads: int) -> Iterator[None]:
    """Run the block with at most ``threads`` BLAS threads (restored afterwards)."""
    with _threadpools().limit(limits=threads, user_api="blas"):
        yield


def side_by_side(run: Callable[[T], R], items: Sequence[T], workers: int | None = None,
                 blas_each: int | None = None) -> list[R]:
    """``[run(item) for item in items]``, on up to ``workers`` threads (default: the current plan's threads for
    parts, else as many as BLAS may use now), each with ``blas_each`` BLAS threads (default: the BLAS threads
    shared out among them); in the calling thread alone when there is one.

    The BLAS limit is set on the calling thread: OpenBLAS heeds it there for the workers' products too, while a
    limit a worker set for itself is ignored once the caller has set a count (OpenBLAS 0.3.31, threadpoolctl 3.8).
    """
    total = blas_threads()
    workers = max(1, min(len(items), part_threads() if workers is None else workers))
    each = max(1, total // workers) if blas_each is None else blas_each
    with blas_limit(each):
        if workers == 1:
            return [run(item) for item in items]
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(run, items))   # re-raises a worker's exception


def in_batches(run: Callable[[int, int], None], n: int, batch_size: int, min_batch: int = 16) -> None:
    """Call ``run(start, stop)`` on consecutive batches that cover ``range(n)``, on as many threads as BLAS may use
    now, each thread with one BLAS thread.

    For inference over many independent items: NumPy releases the GIL in the copies and products that dominate,
    so the cores share all the work (im2col, pooling, activations), not only the products. No batch is cut below
    ``min_batch`` items to give a thread work. ``run`` must only write its own rows; grad mode is process-wide,
    so the caller sets it around the call.
    """
    workers = max(1, min(blas_threads(), -(-n // min_batch)))
    size = max(1, min(batch_size, -(-n // workers)))
    spans = [(start, min(start + size, n)) for start in range(0, n, size)]
    side_by_side(lambda span: run(*span), spans, workers)


@dataclass
class LoadProbe:
    """How many of our cores other processes kept busy between two readings."""

    cpus: set[int] = field(default_factory=affinity_cores)
    _last: tuple[float, float, float] | None = None

    def read(self) -> float | None:
        """Cores used by others since the previous call (None on the first call or without /proc)."""
        busy = _busy_seconds(self.cpus)
        if busy is None:
            return None
        now = (busy, _own_seconds(), time.monotonic())
        previous, self._last = self._last, now
        if previous is None or now[2] - previous[2] < 0.02:
            return None
        others = (now[0] - previous[0]) - (now[1] - previous[1])
        return max(0.0, others / (now[2] - previous[2]))

    def measure(self, seconds: float = 0.05) -> float:
        """Cores used by others over a short sleep now (0 where it cannot be measured)."""
        self.read()
        time.sleep(seconds)
        return self.read() or 0.0


@dataclass
class ThreadPlan:
    """The BLAS threads for each kind of work in one command; ``override`` is ``--threads``."""

    override: int | None = None
    usable: int = field(default_factory=usable_cores)
    others: float = 0.0
    probe: LoadProbe = field(default_factory=LoadProbe)

    def __post_init__(self) -> None:
        if self.override is not None and self.override < 1:
            raise ValueError(f"threads must be positive, not {self.override}")

    def measure(self) -> "ThreadPlan":
        """Sample the machine's load now (a 50 ms probe) before planning large work."""
        if self.override is None and self.usable > 1:
            self.others = self.probe.measure()
        return self

    def threads(self, work: Work) -> int:
        if self.override is not None:
            return self.override
        if work == "small":
            return 1
        if work == "parts":
            return self.usable
        # a core counts as taken when others use more than a third of it: a BLAS thread that has to share a
        # core makes every product wait for it
        free = self.usable - math.floor(self.others + 2 / 3)
        return max(1, min(self.usable, free))

    @contextmanager
    def use(self, work: Work) -> Iterator[int]:
        """Run the block with this work's BLAS thread count, and this plan's threads for side-by-side parts
        (both restored afterwards)."""
        global _part_threads
        n = self.threads(work)
        previous, _part_threads = _part_threads, self.threads("parts")
        try:
            with blas_limit(n):
                yield n
        finally:
            _part_threads = previous

    def report(self) -> dict[str, object]:
        return {"cpus_online": os.cpu_count(), "affinity_cores": len(self.probe.cpus),
                "cgroup_quota_cores": cgroup_quota(), "usable_cores": self.usable,
                "busy_cores_other_processes": round(self.others, 2),
                "blas_threads_small_work": self.threads("small"), "blas_threads_large_work": self.threads("large"),
                "threads_for_parts": self.threads("parts"),
                "blas": [{"library": p.get("internal_api"), "version": p.get("version"),
                          "threads_at_start": p.get("num_threads")} for p in _threadpools().info()
                         if p.get("user_api") == "blas"]}
