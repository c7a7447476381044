"""Faults while writing: a full disk gives one clean error and leaves nothing partial; stale temp files go away.

A full disk is simulated for real writes (Python, Arrow's C++ and safetensors'
Rust writers alike) by running the command under a small RLIMIT_FSIZE, so a
write past the limit fails with EFBIG. One SIGKILL is here (just after a
checkpoint); SIGKILLs at random moments are ``benchmarks/faults.py``'s (minutes).
"""
from __future__ import annotations

import errno
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seqdl.errors import SeqdlError
from seqdl.io import TEMP_SUFFIX, atomic_open

from conftest import write_tiny_dna_model, write_tiny_text_model

EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "examples" / "ecoli-k12-mg1655-8kb.fa"


def seqdl_with_file_limit(limit: int, *args, cwd: Path) -> subprocess.CompletedProcess:
    """``seqdl ARGS`` where any file write past ``limit`` bytes fails (EFBIG), as on a full disk."""
    def limit_writes() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run([sys.executable, "-m", "seqdl.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=cwd, preexec_fn=limit_writes)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("models")
    write_tiny_dna_model(root / "dna.safetensors")
    write_tiny_text_model(root / "text.safetensors")
    (root / "corpus.txt").write_text("to be or not to be, that is the question\n" * 200)
    return root


TINY_TRAINING = ("--steps", "3", "--hidden", "16", "--layers", "1", "--embed", "8", "--seq-len", "16",
                 "--batch-size", "4", "--quiet")
DISK_FULL = {
    "scan-parquet": ("scan", EXAMPLE, "--model", "{m}/dna.safetensors", "--out", "s.parquet", "--quiet"),
    "quantize-safetensors": ("quantize", "{m}/text.safetensors", "--out", "q.safetensors"),
    "textgen-corpus-cache": ("textgen", "{m}/corpus.txt", "--model", "t.safetensors", *TINY_TRAINING),
    "textgen-samples-parquet": ("textgen", "--no-train", "--model", "{m}/text.safetensors", "--out", "s.parquet",
                                "--length", "50"),
    "eval-text-parquet": ("eval", "text", "{m}/corpus.txt", "--model", "{m}/text.safetensors", "--per-line", "--out",
                          "l.parquet"),
}


@pytest.mark.parametrize("name", list(DISK_FULL))
def test_disk_full_is_one_clean_error_and_leaves_nothing(name, models, tmp_path):
    args = [str(a).replace("{m}", str(models)) for a in DISK_FULL[name]]
    result = seqdl_with_file_limit(1000, *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.splitlines()) == 1 and "cannot write: File too large" in result.stderr
    assert result.stdout == "" and list(tmp_path.iterdir()) == []


def test_disk_full_during_scan_leaves_no_side_outputs(models, tmp_path):
    result = seqdl_with_file_limit(3000, "scan", EXAMPLE, "--model", models / "dna.safetensors", "--out", "s.parquet",
                                   "--bed", "g.bed", "--gff", "g.gff3", "--bedgraph", "t", "--quiet", cwd=tmp_path)
    assert result.returncode == 2 and "cannot write" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_no_space_left_in_a_python_writer_names_the_file_and_keeps_the_old_one(tmp_path):
    target = tmp_path / "calls.bed"
    target.write_text("old\n")
    with pytest.raises(SeqdlError, match=r"calls.bed: cannot write: No space left on device; nothing was written"):
        with atomic_open(target) as handle:
            handle.write("chr1\t0\t10\n")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["calls.bed"]


def test_other_errors_in_a_writer_are_not_blamed_on_the_disk(tmp_path):
    with pytest.raises(PermissionError):
        with atomic_open(tmp_path / "x.txt"):
            raise PermissionError(errno.EACCES, "Permission denied")
    assert list(tmp_path.iterdir()) == []


def test_a_killed_writers_temp_file_is_removed_by_the_next_write(models, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".s.parquet.{dead.pid}.0123abcd{TEMP_SUFFIX}"
    stale.write_bytes(b"PAR1 half a file")
    other = tmp_path / f".other.bin.{dead.pid}.0123abcd{TEMP_SUFFIX}"  # another output's: left to its writer
    other.write_bytes(b"x")
    result = subprocess.run([sys.executable, "-m", "seqdl.cli", "scan", str(EXAMPLE), "--model",
                             str(models / "dna.safetensors"), "--out", "s.parquet", "--quiet"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([other.name, "s.parquet"])


def test_a_write_error_is_both_a_seqdl_error_and_an_os_error(tmp_path):
    """The CLI prints it as one line (exit 2); library callers that catch OSError still do."""
    with pytest.raises(OSError) as caught:
        with atomic_open(tmp_path / "x.txt"):
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
    assert isinstance(caught.value, SeqdlError)
    assert str(caught.value) == f"{tmp_path / 'x.txt'}: cannot write: Disk quota exceeded; nothing was written"


def test_textgen_killed_after_a_checkpoint_resumes_to_the_uninterrupted_result(tmp_path):
    """One SIGKILL of ``benchmarks/faults.py``, deterministic: just after the first checkpoint appears."""
    from benchmarks import faults

    inputs, reference, work = tmp_path / "inputs", tmp_path / "reference", tmp_path / "work"
    for directory in (inputs, reference, work):
        directory.mkdir()
    (inputs / "corpus.txt").write_text("to be or not to be that is the question\n" * 300)
    command = faults.COMMANDS["textgen"]
    assert subprocess.run([sys.executable, "-m", "seqdl.cli", *command.fresh(inputs, reference)],
                          capture_output=True, timeout=300).returncode == 0
    process = subprocess.Popen([sys.executable, "-m", "seqdl.cli", *command.fresh(inputs, work)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not command.checkpoint(work).exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert faults.survey(work)[0] == []  # every file present loads
    assert not faults.training_finished(command, work)
    resumed = subprocess.run([sys.executable, "-m", "seqdl.cli", *command.resume(inputs, work)],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert faults.survey(work) == ([], 0)
    assert faults.same_state(faults.final_state(command, work), faults.final_state(command, reference))
