"""Quantisation: error bounds, sizes on disk, round trips, small change in a model's outputs."""
from __future__ import annotations

import numpy as np
import pytest

import seqdl
from seqdl import Tensor, nn
from seqdl.checkpoint import load, save
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


def test_report_gives_sizes_and_metric_change():
    model = _model()
    x = Tensor(rng.standard_normal((64, 256)))
    with seqdl.no_grad():
        labels = model(x).data.argmax(axis=1)

    def accuracy(m: nn.Module) -> float:
        with seqdl.no_grad():
            return float((m(x).data.argmax(axis=1) == labels).mean())

    report = quantization_report(model, 8, accuracy)
    assert report["metric_before"] == 1.0 and report["metric_after"] > 0.9
    assert report["size_ratio"] > 3.7 and report["quantized_bytes"] < report["float32_bytes"]


def test_recurrent_and_conv_weights_are_quantized(tmp_path):
    model = nn.Sequential(nn.Conv1d(4, 8, 5), nn.GRU(8, 16))
    save_quantized(tmp_path / "q.safetensors", model, bits=8)
    from safetensors.numpy import load_file

    names = set(load_file(str(tmp_path / "q.safetensors")))
    assert {"0.weight.q", "1.weight_ih_l0.q", "1.weight_hh_l0.q", "0.bias", "1.bias_ih_l0"} <= names
