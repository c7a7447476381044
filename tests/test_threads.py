"""The thread plan: small work never fans out, large work uses the free cores we may use, parts that do not wait
for one another use every core we may use, --threads wins."""
import os
import pytest
from threadpoolctl import threadpool_info

import threading

from seqdl.threads import LoadProbe, ThreadPlan, cgroup_quota, side_by_side, usable_cores


def blas_threads() -> int:
    return next(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")


def test_small_work_runs_on_one_thread_and_restores():
    before = blas_threads()
    plan = ThreadPlan(usable=4)
    with plan.use("small") as n:
        assert n == 1 and blas_threads() == 1
    assert blas_threads() == before


def test_large_work_uses_the_cores_others_leave_free():
    assert ThreadPlan(usable=4, others=0.0).threads("large") == 4
    assert ThreadPlan(usable=4, others=1.0).threads("large") == 3
    assert ThreadPlan(usable=2, others=0.5).threads("large") == 1   # half a core taken: share none
    assert ThreadPlan(usable=2, others=0.2).threads("large") == 2   # noise is not a job
    assert ThreadPlan(usable=2, others=7.0).threads("large") == 1


def test_parts_run_a_thread_each_on_every_usable_core_busy_or_not():
    """Parts share no barrier: next to other programs each runs slower, none waits for a busy core's BLAS thread."""
    busy = ThreadPlan(usable=2, others=2.0)
    assert busy.threads("large") == 1 and busy.threads("parts") == 2
    assert ThreadPlan(override=1, usable=2).threads("parts") == 1
    with busy.use("large"):
        seen = side_by_side(lambda _: (threading.get_ident(), blas_threads()), range(2))
    assert len({ident for ident, _ in seen}) == 2 and all(n == 1 for _, n in seen)
    with ThreadPlan(override=1, usable=2).use("large"):
        assert {ident for ident, _ in side_by_side(lambda _: (threading.get_ident(), 0), range(2))} == {
            threading.get_ident()}


def test_override_wins_and_must_be_positive():
    assert ThreadPlan(override=3, usable=2, others=2.0).threads("small") == 3
    with pytest.raises(ValueError):
        ThreadPlan(override=0)


def test_cgroup_quota_files(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_quota(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_quota(tmp_path) is None
    assert 1 <= usable_cores() <= (os.cpu_count() or 1)


def test_probe_counts_others_not_our_own_time(monkeypatch):
    import seqdl.threads as threads
    readings = iter([(100.0, 10.0, 50.0), (101.9, 10.9, 51.0)])  # all CPUs busy, ours, wall clock
    busy, own, wall = zip(*readings)
    ticks = iter(range(2))
    monkeypatch.setattr(threads, "_busy_seconds", lambda cpus: busy[next(ticks)])
    clock = iter(range(2))
    monkeypatch.setattr(threads, "_own_seconds", lambda: own[next(clock)])
    walls = iter(wall)
    monkeypatch.setattr(threads.time, "monotonic", lambda: next(walls))
    probe = LoadProbe(cpus={0, 1})
    assert probe.read() is None
    assert probe.read() == pytest.approx(1.0)  # 1.9 busy-seconds in 1 s, 0.9 of them ours


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="needs Linux /proc/stat")
def test_probe_reads_this_machine():
    probe = LoadProbe()
    assert 0.0 <= probe.measure(0.05) <= len(probe.cpus) + 0.5


def test_info_reports_cores_and_threads(capfd, monkeypatch):
    import json

    from seqdl import cli

    monkeypatch.setenv("SEQDL_KEEP_FREED_MEMORY", "0")
    with pytest.raises(SystemExit) as stop:
        cli.main(["info", "--json"])
    record = json.loads(capfd.readouterr().out)
    assert stop.value.code == 0
    assert record["usable_cores"] >= 1 and record["blas_threads_small_work"] == 1
    assert 1 <= record["blas_threads_large_work"] <= record["usable_cores"]


def test_sampling_runs_on_one_blas_thread(monkeypatch):
    """What `seqdl textgen --no-train` does around sampling: one-row products never fan out."""
    from pipelines import text_model

    seen = []
    real = text_model.generate
    monkeypatch.setattr(text_model, "generate", lambda *a, **k: seen.append(blas_threads()) or real(*a, **k))
    from seqdl import cli

    monkeypatch.setenv("SEQDL_KEEP_FREED_MEMORY", "0")
    with pytest.raises(SystemExit) as stop:
        cli.main(["textgen", "--no-train", "--length", "5", "--seed", "1", "--quiet"])
    assert stop.value.code == 0 and seen == [1]


@pytest.mark.parametrize("command", [["scan"], ["eval", "dna"], ["eval", "text"], ["eval", "letters"],
                                     ["train", "dna"], ["train", "letters"], ["textgen"],
                                     ["ocr"], ["segment"]])
def test_every_compute_command_takes_threads(command, capfd):
    """``--threads N`` overrides the plan on every command that runs a model."""
    from seqdl import cli

    with pytest.raises(SystemExit) as stop:
        cli.main([*command, "--help"])
    assert stop.value.code == 0 and "--threads" in capfd.readouterr().out
