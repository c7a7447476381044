"""``seqdl ocr``: text on stdout, --json, --out Parquet, --annotate PNG, --lm, wrong models, blank pages."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from tests.conftest import write_tiny_dna_model

EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "examples" / "page-emnist.png"


@pytest.fixture(scope="module")
def tiny_letters_model(tmp_path_factory) -> Path:
    """An untrained letters model: the outputs' shape and bookkeeping do not depend on how well it reads."""
    import seqdl
    from seqdl import checkpoint
    from vision.letters_model import KIND, LettersConfig, build_model, model_metadata

    seqdl.manual_seed(0)
    config = LettersConfig(channels=(4, 4, 4), hidden=8)
    path = tmp_path_factory.mktemp("tiny-letters") / "letters.safetensors"
    checkpoint.save(path, build_model(config), config=config.to_dict(), metadata=model_metadata(), kind=KIND)
    return path


@pytest.fixture
def run(monkeypatch, capsys):
    """``seqdl ARGS`` in this process: exit code, stdout, stderr (``sys.argv`` set: provenance records it)."""
    from seqdl.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["seqdl", *args])
        with pytest.raises(SystemExit) as stop:
            main(list(args))
        captured = capsys.readouterr()
        return stop.value.code, captured.out, captured.err

    return run




def test_json_parquet_and_annotated_png(tmp_path, run, tiny_letters_model, tiny_text_model):
    out = tmp_path / "letters.parquet"
    code, stdout, stderr = run("ocr", str(EXAMPLE), "--model", str(tiny_letters_model), "--json", "--out",
                               str(out), "--annotate", str(tmp_path), "--lm", str(tiny_text_model), "--quiet")
    assert code == 0, stderr
    record = json.loads(stdout)
    assert record["file"] == str(EXAMPLE) and record["n_lines"] == 5 and record["n_words"] == 16
    assert record["n_letters"] == sum(c.isalpha() for c in record["text"]) > 0
    assert record["text"] == record["text"].lower() and len(record["text"].split("\n")) == 5
    assert 0 < record["mean_confidence"] <= 1

    table = pq.read_table(out)
    assert table.column_names == ["file", "line", "word", "index", "x0", "y0", "x1", "y1", "letter", "probability",
                                  "top3_letters", "top3_probabilities", "low_confidence", "from_cut"]
    rows = table.to_pylist()
    assert len(rows) == record["n_letters"]
    assert "".join(r["letter"] for r in rows) == record["text"].replace("\n", "").replace(" ", "")
    order = [(r["line"], r["word"], r["index"]) for r in rows]
    assert order == sorted(order) and len(set(order)) == len(order)
    for r in rows:
        assert len(r["top3_letters"]) == 3 and len(r["top3_probabilities"]) == 3
        assert r["top3_probabilities"] == sorted(r["top3_probabilities"], reverse=True)
        assert r["low_confidence"] == (r["probability"] < 0.5)
        assert r["x0"] < r["x1"] and r["y0"] < r["y1"]
    meta = {k.decode(): v.decode() for k, v in table.schema.metadata.items()}
    assert meta["seqdl.command"].startswith("seqdl ocr ") and meta["seqdl.model"] == str(tiny_letters_model)
    assert len(meta["seqdl.model_sha256"]) == 64 and json.loads(meta["seqdl.params"])["lm"] == str(tiny_text_model)
    assert json.loads(meta["seqdl.inputs"])[0]["path"] == str(EXAMPLE)

    with Image.open(tmp_path / "page-emnist.ocr.png") as annotated:
        assert annotated.format == "PNG"
        drawn = np.asarray(annotated.convert("RGB"))
    with Image.open(EXAMPLE) as original:
        assert drawn.shape[:2] == (original.height, original.width)
        assert np.any(drawn != np.asarray(original.convert("RGB")))


def test_blank_page_is_empty_text_a_warning_and_exit_0(tmp_path, run, tiny_letters_model):
    Image.new("RGB", (800, 600), (243, 240, 230)).save(tmp_path / "blank.jpg")
    code, stdout, stderr = run("ocr", str(tmp_path / "blank.jpg"), "--model", str(tiny_letters_model),
                               "--json", "--quiet")
    assert code == 0
    record = json.loads(stdout)
    assert (record["text"], record["n_lines"], record["n_words"], record["n_letters"]) == ("", 0, 0, 0)
    assert stderr == f"seqdl: warning: {tmp_path / 'blank.jpg'}: no text found (blank page?)\n"


@pytest.mark.parametrize("option", ["--model", "--lm"])
def test_a_model_of_another_kind_is_one_line_and_exit_2(tmp_path, run, option, tiny_letters_model,
                                                        tiny_text_model):
    wrong = {"--model": [write_tiny_dna_model(tmp_path / "dna.safetensors"), tiny_text_model],
             "--lm": [tiny_letters_model, write_tiny_dna_model(tmp_path / "dna.safetensors")]}[option]
    for model in wrong:
        args = ["ocr", str(EXAMPLE), option, str(model), "--out", str(tmp_path / "x.parquet"), "--quiet"]
        if option == "--lm":
            args += ["--model", str(tiny_letters_model)]
        code, stdout, stderr = run(*args)
        assert code == 2 and stdout == ""
        assert stderr.startswith(f"seqdl: error: {model}: ") and len(stderr.splitlines()) == 1, stderr
        assert not (tmp_path / "x.parquet").exists()


def test_text_on_stdout_and_a_bad_page_in_a_batch(tmp_path, run, tiny_letters_model):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    code, stdout, stderr = run("ocr", str(EXAMPLE), str(tmp_path / "bad.png"), "--model",
                               str(tiny_letters_model), "--out", str(tmp_path / "letters.parquet"), "--quiet")
    assert code == 3 and [len(line.split()) for line in stdout.splitlines()] == [3, 3, 3, 3, 4]   # text, line by line
    assert stderr.startswith(f"seqdl: error: {tmp_path / 'bad.png'}: not an image") and len(stderr.splitlines()) == 1
    assert set(pq.read_table(tmp_path / "letters.parquet").column("file").to_pylist()) == {str(EXAMPLE)}


def test_help_says_lower_case(run):
    code, stdout, _ = run("ocr", "--help")
    assert code == 0 and "lower case" in stdout


@pytest.mark.parametrize("command", ["ocr", "segment"])
def test_machine_print_is_left_out_unless_keep_print(tmp_path, run, tiny_letters_model, command):
    from tests.test_print_ink import printed_form

    form = tmp_path / "form.png"
    Image.fromarray(printed_form(np.asarray(Image.open(EXAMPLE).convert("RGB")))).save(form)
    model = ["--model", str(tiny_letters_model)] if command == "ocr" else []
    records = []
    for keep in ([], ["--keep-print"]):
        code, stdout, stderr = run(command, str(form), *model, *keep, "--json", "--quiet")
        assert code == 0, stderr
        records.append(json.loads(stdout))
    left_out, kept = records
    assert left_out["n_printed"] > 100 and kept["n_printed"] == 0
    assert left_out["n_lines"] == 5 and kept["n_lines"] > 5
    assert kept["n_letters"] > left_out["n_letters"] + 100
