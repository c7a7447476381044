"""The CLI's shared behaviour: results on stdout, one-line errors with exit code 2, JSON output."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

import seqdl
from seqdl.metrics import MetricLogger


def seqdl_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seqdl.cli", *args], capture_output=True, text=True, timeout=120)


def test_info_describes_environment_and_models(tmp_path):
    result = seqdl_cli("info", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["seqdl_version"] == seqdl.__version__
    seqdl.save(tmp_path / "m.safetensors", seqdl.nn.Linear(3, 2), kind="letters", config={"classes": 2})
    result = seqdl_cli("info", str(tmp_path / "m.safetensors"), "--json")
    record = json.loads(result.stdout)
    assert record["kind"] == "letters" and record["n_parameters"] == 8


def test_plot_writes_png_and_errors_are_one_line(tmp_path):
    with MetricLogger(tmp_path / "m.parquet") as logger:
        for step in range(5):
            logger.log(step, loss=float(np.exp(-step)))
    ok = seqdl_cli("plot", str(tmp_path / "m.parquet"), "-o", str(tmp_path / "c.png"))
    assert ok.returncode == 0 and (tmp_path / "c.png").stat().st_size > 1000
    as_json = seqdl_cli("plot", str(tmp_path / "m.parquet"), "-o", str(tmp_path / "j.png"), "--json")
    assert json.loads(as_json.stdout) == {"metrics": str(tmp_path / "m.parquet"), "out": str(tmp_path / "j.png")}
    quiet = seqdl_cli("plot", str(tmp_path / "m.parquet"), "-o", str(tmp_path / "q.png"), "--quiet")
    assert quiet.returncode == 0 and quiet.stdout == "" and (tmp_path / "q.png").is_file()
    missing = seqdl_cli("plot", str(tmp_path / "nope.parquet"), "-o", str(tmp_path / "d.png"))
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.strip() == f"seqdl: error: {tmp_path / 'nope.parquet'}: no such metrics file"
    no_dir = seqdl_cli("plot", str(tmp_path / "m.parquet"), "-o", str(tmp_path / "missing" / "c.png"))
    assert no_dir.returncode == 2 and "does not exist" in no_dir.stderr and "Traceback" not in no_dir.stderr


def test_corrupt_model_and_unknown_command(tmp_path):
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 100)
    result = seqdl_cli("info", str(tmp_path / "bad.safetensors"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    result = seqdl_cli("frobnicate")
    assert result.returncode == 2 and result.stderr.startswith("seqdl: error:")


def test_quantize_keeps_kind_config_step_and_metadata_and_drops_optimizer(tmp_path):
    seqdl.manual_seed(0)
    model = seqdl.nn.Sequential(seqdl.nn.Embedding(40, 32), seqdl.nn.Linear(32, 64), seqdl.nn.Linear(64, 40))
    optimizer = seqdl.optim.AdamW(model.parameters())
    source = seqdl.save(tmp_path / "m.ckpt.safetensors", model, optimizer=optimizer, step=12, kind="text",
                        config={"hidden": 64}, metadata={"seqdl.vocab": ["a", "b"]})
    result = seqdl_cli("quantize", str(source), "--out", str(tmp_path / "m8.safetensors"), "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["bytes_after"] < record["bytes_before"] / 3
    small = seqdl.load(tmp_path / "m8.safetensors", kind="text")
    assert small.step == 12 and small.config == {"hidden": 64} and small.metadata["seqdl.vocab"] == ["a", "b"]
    assert small.optimizer_state is None
    for name, value in model.state_dict().items():
        step = np.abs(value).max() / 127
        assert np.abs(small.state_dict[name] - value).max() <= step / 2 + 1e-7, name

    bad = seqdl_cli("quantize", str(source), "--out", str(tmp_path / "x.safetensors"), "--bits", "3")
    assert bad.returncode == 2 and bad.stderr.strip() == "seqdl: error: --bits must be 8 or 4, not 3"
    assert not (tmp_path / "x.safetensors").exists()
