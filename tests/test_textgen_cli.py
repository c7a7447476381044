"""``seqdl textgen`` and ``seqdl eval text`` end to end, Ctrl-C, and every bad input of issue 4."""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import seqdl

VERSE = ("Shall I compare thee to a summer's day?\nThou art more lovely and more temperate:\n"
         "Rough winds do shake the darling buds of May,\nAnd summer's lease hath all too short a date.\n")
TINY = ["--cell", "gru", "--hidden", "32", "--layers", "1", "--embed", "8", "--seq-len", "24", "--batch-size", "8",
        "--quiet"]


def seqdl_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seqdl.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny model trained through the CLI (shared by the tests that only read it)."""
    root = tmp_path_factory.mktemp("trained")
    corpus = root / "verse.txt"
    corpus.write_text(VERSE * 30)
    result = seqdl_cli("textgen", corpus, "--model", root / "verse.safetensors", "--steps", "30", "--seed", "1",
                       "--length", "40", "--json", *TINY)
    assert result.returncode == 0, result.stderr
    summary, sample = (json.loads(line) for line in result.stdout.splitlines())
    assert summary["step"] == 30 and summary["val_nats_per_char"] > 0
    assert len(sample["text"]) == 40
    return root / "verse.safetensors"


def test_training_writes_model_checkpoint_metrics_and_cache(trained):
    names = sorted(p.name for p in trained.parent.iterdir())
    assert names == ["verse.checkpoint.safetensors", "verse.corpus.json", "verse.corpus.npy",
                     "verse.metrics.parquet", "verse.safetensors", "verse.txt"]
    info = json.loads(seqdl_cli("info", trained, "--json").stdout)
    assert info["kind"] == "text" and info["config"]["cell"] == "gru" and not info["has_optimizer_state"]


def test_sampling_to_parquet_is_repeatable_with_provenance(trained, tmp_path):
    args = ["textgen", "--model", trained, "--no-train", "--prompt", "Thou ", "--length", "50", "--num-samples", "3",
            "--temperature", "0.7", "--top-k", "5", "--top-p", "0.9", "--seed", "3"]
    result = seqdl_cli(*args, "--out", tmp_path / "s.parquet")
    assert result.returncode == 0 and result.stdout == "", result.stderr
    table = pq.read_table(tmp_path / "s.parquet")
    rows = table.to_pylist()
    assert [r["sample_index"] for r in rows] == [0, 1, 2] and all(len(r["text"]) == 50 for r in rows)
    assert rows[0]["prompt"] == "Thou " and rows[0]["top_k"] == 5 and rows[0]["temperature"] == 0.7
    meta = table.schema.metadata
    assert meta[b"seqdl.model_sha256"].decode() == seqdl.checkpoint.sha256_file(trained)
    again = seqdl_cli(*args)
    assert again.stdout.split("\n\n")[0] == "Thou " + rows[0]["text"]


def test_eval_text_json_and_per_line(trained, tmp_path):
    held_out = tmp_path / "held.txt"
    held_out.write_text(VERSE * 3)
    result = seqdl_cli("eval", "text", "--model", trained, held_out, "--json", "--quiet")
    assert result.returncode == 0, result.stderr
    record, summary = (json.loads(line) for line in result.stdout.splitlines())
    assert record["characters"] == len(VERSE * 3)
    assert record["bits_per_char"] == pytest.approx(record["nats_per_char"] / np.log(2))
    assert summary["nats_per_char"] == pytest.approx(record["nats_per_char"])
    out = tmp_path / "lines.parquet"
    result = seqdl_cli("eval", "text", "--model", trained, held_out, held_out, "--per-line", "--out", out, "--quiet")
    assert result.returncode == 0, result.stderr
    table = pq.read_table(out)
    assert table.num_rows == 2 * (VERSE * 3).count("\n")
    assert table.column_names == ["file", "line_number", "characters", "nats_per_char"]
    assert json.loads(table.schema.metadata[b"seqdl.inputs"])[0]["path"] == str(held_out)


def test_ctrl_c_saves_a_checkpoint_and_resume_finishes(tmp_path):
    corpus = tmp_path / "verse.txt"
    corpus.write_text(VERSE * 30)
    model = tmp_path / "m.safetensors"
    process = subprocess.Popen([sys.executable, "-m", "seqdl.cli", "textgen", str(corpus), "--model", str(model),
                                "--steps", "100000", *TINY], stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (tmp_path / "m.corpus.json").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.5)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    step = int(re.search(r"interrupted at step (\d+)", stderr).group(1))
    assert step > 0 and "Traceback" not in stderr
    saved = seqdl.load(tmp_path / "m.checkpoint.safetensors", kind="text")
    assert saved.step == step and saved.optimizer_state is not None
    resumed = seqdl_cli("textgen", corpus, "--model", model, "--resume", "--steps", step + 3, "--length", "10",
                        "--json", *TINY)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout.splitlines()[0])["step"] == step + 3


# ---------------------------------------------------------------- bad input
def _bad_inputs(tmp: Path, trained: Path) -> list[tuple[list, str]]:
    (tmp / "empty.txt").write_text("")
    (tmp / "blank.txt").write_text("  \n\t\n   \n")
    (tmp / "blob.bin").write_bytes(bytes(range(256)) * 4)
    (tmp / "latin1.txt").write_bytes("café crème brûlée\n".encode("latin-1") * 20)
    (tmp / "short.txt").write_text("tiny text\n")
    (tmp / "ok.txt").write_text(VERSE * 10)
    (tmp / "adir").mkdir()
    (tmp / "junk.safetensors").write_bytes(b"\x00" * 64)
    seqdl.save(tmp / "dna.safetensors", seqdl.nn.Linear(4, 2), kind="dna", config={})
    seqdl.save(tmp / "plain.safetensors", seqdl.nn.Linear(4, 2))
    m = ["--model", tmp / "new.safetensors"]
    train = ["textgen", *TINY, "--steps", "5"]
    sample = ["textgen", "--no-train", "--model", trained]
    return [
        ([*train, tmp / "missing.txt", *m], "no such file"),
        ([*train, tmp / "adir", *m], "is a directory"),
        ([*train, tmp / "empty.txt", *m], "is empty"),
        ([*train, tmp / "blank.txt", *m], "only whitespace"),
        ([*train, tmp / "blob.bin", *m], "binary file"),
        ([*train, tmp / "latin1.txt", *m], "invalid utf-8 at byte offset 3"),
        ([*train, tmp / "short.txt", *m], "too short"),
        ([*train, tmp / "ok.txt", "--resume"], "--resume needs --model"),
        ([*train, tmp / "ok.txt", "--resume", *m], "nothing to resume"),
        (["textgen", *TINY, tmp / "ok.txt", "--minutes", "0", *m], "--minutes must be positive"),
        (["textgen", *TINY, "--steps", "-3", tmp / "ok.txt", *m],
         "--steps -3: input should be greater than or equal to 1"),
        ([*train, tmp / "ok.txt", "--seq-len", "0", *m], "--seq-len 0: input should be greater than or equal to 1"),
        ([*sample, "--prompt", "\u4e2d\u6587"], "every character of the prompt is outside"),
        ([*sample, "--length", "0"], "--length 0: input should be greater than or equal to 1"),
        ([*sample, "--temperature", "0"], "--temperature must be positive"),
        ([*sample, "--temperature", "-1"], "--temperature must be positive"),
        ([*sample, "--num-samples", "0"], "--num-samples 0: input should be greater than or equal to 1"),
        (["textgen", "--no-train", "--model", tmp / "dna.safetensors"], "expected a 'text' model, this is a 'dna'"),
        (["textgen", "--no-train", "--model", tmp / "plain.safetensors"], "not a seqdl model"),
        (["textgen", "--no-train", "--model", tmp / "junk.safetensors"], "junk.safetensors"),
        (["eval", "text", "--model", tmp / "dna.safetensors", tmp / "ok.txt"], "expected a 'text' model"),
        (["eval", "text", "--model", trained, tmp / "blob.bin", "--per-line", "--out", tmp / "s.parquet"],
         "binary file"),
        (["eval", "text", "--model", trained, tmp / "latin1.txt", "--per-line", "--out", tmp / "s.parquet"],
         "invalid utf-8"),
        (["eval", "text", "--model", trained, tmp / "missing.txt"], "no such file"),
    ]


def test_every_bad_input_is_one_line_exit_2_and_leaves_nothing(trained, tmp_path):
    for args, message in _bad_inputs(tmp_path, trained):
        before = set(tmp_path.rglob("*"))
        result = seqdl_cli(*args)
        after = set(tmp_path.rglob("*"))
        shown = " ".join(map(str, args))
        assert result.returncode == 2, (shown, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("seqdl: error:"), (shown, result.stderr)
        assert message in lines[0], (shown, lines[0])
        assert result.stdout == "" and after == before, (shown, sorted(map(str, after - before)))
