"""Quantisation: error bounds, sizes on disk, round trips, small change in a model's outputs."""
from __future__ import annotations

import json

import numpy as np
import pytest

import seqdl
from seqdl import Tensor, nn
from seqdl.checkpoint import describe, load, save
from seqdl.quantize import (
    dequantize_int4, dequantize_int8, load_quantized, quantization_report, quantize_int4, quantize_int8,
    save_quantized,
)

rng = np.random.default_rng(9)


def test_int8_error_is_at_most_half_a_step_per_channel():
    w = rng.standard_normal((16, 3, 5)).astype(np.float32) * rng.uniform(0.01, 3, (16, 1, 1)).astype(np.float32)
    w[3] = 0
    q, scale = quantize_int8(w)
    back = dequantize_int8(q, scale, w.shape)
    step = scale.reshape(16, 1, 1)
    assert np.all(np.abs(back - w) <= step / 2 + 1e-7)
    np.testing.assert_array_equal(back[3], 0)


@pytest.mark.parametrize("cols", [64, 100, 7])
def test_int4_error_is_at_most_half_a_step_per_group(cols):
    w = rng.standard_normal((5, cols)).astype(np.float32)
    packed, scale = quantize_int4(w, group_size=32)
    assert packed.dtype == np.uint8 and packed.shape[1] == scale.shape[1] * 16
    back = dequantize_int4(packed, scale, w.shape)
    steps = np.repeat(scale, 32, axis=1)[:, :cols]
    assert np.all(np.abs(back - w) <= steps / 2 + 1e-7)


def _model() -> nn.Module:
    seqdl.manual_seed(4)
    return nn.Sequential(nn.Linear(256, 512), nn.GELU(), nn.Linear(512, 256), nn.LayerNorm(256), nn.Linear(256, 10))


@pytest.mark.parametrize("bits,min_ratio", [(8, 3.7), (4, 6.0)])
def test_size_on_disk_and_round_trip(tmp_path, bits, min_ratio):
    model = _model()
    plain = save(tmp_path / "f.safetensors", model)
    small = save_quantized(tmp_path / "q.safetensors", model, bits=bits, kind="text", config={"a": 1})
    assert plain.stat().st_size / small.stat().st_size > min_ratio
    ckpt = load(small, kind="text")
    assert ckpt.config == {"a": 1} and ckpt.metadata == {}
    restored = load_quantized(small, _model())
    np.testing.assert_array_equal(restored[3].weight.data, model[3].weight.data)  # LayerNorm stays float32
    x = Tensor(rng.standard_normal((32, 256)))
    with seqdl.no_grad():
        a, b = model(x).data, restored(x).data
    tolerance = 0.02 if bits == 8 else 0.15
    assert np.abs(a - b).max() < tolerance * np.abs(a).max()


def test_report_gives_sizes_and_metric_change(tmp_path):
    model = _model()
    x = Tensor(rng.standard_normal((64, 256)))
    with seqdl.no_grad():
        labels = model(x).data.argmax(axis=1)
    before = {k: v.copy() for k, v in model.state_dict().items()}

    def accuracy(m: nn.Module) -> float:
        with seqdl.no_grad():
            return float((m(x).data.argmax(axis=1) == labels).mean())

    report = quantization_report(model, 8, accuracy, path=tmp_path / "q8.safetensors")
    assert report["metric_before"] == 1.0 and report["metric_after"] > 0.9
    assert report["metric_change"] == report["metric_after"] - 1.0
    assert report["size_ratio"] > 3.7 and report["quantized_bytes"] == (tmp_path / "q8.safetensors").stat().st_size
    for name, array in model.state_dict().items():  # the model itself is untouched
        np.testing.assert_array_equal(array, before[name])
    report4 = quantization_report(model, 4, accuracy, group_size=32)
    assert report4["group_size"] == 32 and report4["size_ratio"] > report["size_ratio"]


@pytest.mark.parametrize("bits,min_ratio", [(8, 3.95), (4, 7.0)])
def test_large_layer_size_ratio(tmp_path, bits, min_ratio):
    layer = nn.Linear(1024, 1024, bias=False)
    plain = save(tmp_path / "f.safetensors", layer).stat().st_size
    small = save_quantized(tmp_path / "q.safetensors", layer, bits=bits).stat().st_size
    assert min_ratio < plain / small < (4 if bits == 8 else 8)


def test_which_tensors_are_quantized_and_what_the_header_says(tmp_path):
    from safetensors import safe_open

    model = nn.Sequential(nn.Conv1d(16, 32, 5), nn.GRU(32, 32), nn.Linear(3, 2), nn.BatchNorm1d(2048))
    path = save_quantized(tmp_path / "q.safetensors", model, bits=4, group_size=32)
    with safe_open(str(path), framework="np") as handle:
        names = set(handle.keys())
        quantization = json.loads(handle.metadata()["seqdl.quantization"])
    assert {"0.weight.q", "0.weight.scale", "1.weight_ih_l0.q", "1.weight_hh_l0.q"} <= names
    assert {"0.bias", "1.bias_ih_l0", "2.weight", "3.weight", "3.running_mean"} <= names  # small or 1-D: float32
    assert quantization["bits"] == 4 and quantization["group_size"] == 32 and "symmetric" in quantization["scheme"]
    assert quantization["tensors"]["0.weight"] == [32, 16, 5]
    info = describe(path)
    assert info["n_parameters"] == sum(a.size for a in model.state_dict().values())
    assert info["n_tensors"] == len(model.state_dict()) and info["quantization"]["bits"] == 4
    restored = load_quantized(path, nn.Sequential(nn.Conv1d(16, 32, 5), nn.GRU(32, 32), nn.Linear(3, 2),
                                                  nn.BatchNorm1d(2048)))
    np.testing.assert_array_equal(restored[2].weight.data, model[2].weight.data)
    error = np.abs(restored[1].weight_hh_l0.data - model[1].weight_hh_l0.data).max()
    assert 0 < error < np.abs(model[1].weight_hh_l0.data).max() / 7


def test_bad_arguments():
    with pytest.raises(ValueError, match="bits must be 8 or 4"):
        save_quantized("unused.safetensors", _model(), bits=3)
    with pytest.raises(ValueError, match="group_size"):
        quantize_int4(np.ones((2, 8), np.float32), group_size=5)
