"""``seqdl segment``: summary, --json, --out Parquet, --annotate PNG, bad input, blank pages, atomic outputs."""
from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from seqdl import cli
from vision import segment
from vision.segment import crops_from_parquet

EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "examples" / "page-emnist.png"


def run(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """``seqdl ARGS`` in this process (as a user runs it, via ``cli.main``): exit code, stdout, stderr."""
    monkeypatch.setenv("SEQDL_KEEP_FREED_MEMORY", "0")   # leave the test process's allocator alone
    monkeypatch.setattr(sys, "argv", ["seqdl", *args])
    with pytest.raises(SystemExit) as stop:
        cli.main()
    captured = capsys.readouterr()
    return stop.value.code, captured.out, captured.err


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` greyscale pixels (with almost no data behind it)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + png_chunk(b"IEND", b""))


def encoded(fmt: str) -> bytes:
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 300, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    picture.save(buffer, format=fmt)
    return buffer.getvalue()


BAD_INPUTS = {
    "missing.png": (None, "no such file"),
    "folder.png": ("dir", "is a directory"),
    "notes.jpg": (b"shopping list: eggs, milk\n", "not an image"),
    "cut.jpg": ("JPEG", "truncated"),
    "cut.png": ("PNG", "truncated"),
    "scan.pdf": (b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<<>>\n%%EOF\n", "PDF"),
    "empty.png": (b"", "empty file"),
    "zero.png": (png_header_only(0, 10), "zero-size"),
    "bomb.png": (png_header_only(100_000, 100_000), "decompression bomb"),
}


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, monkeypatch, capsys, name):
    content, message = BAD_INPUTS[name]
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif isinstance(content, str):
        whole = encoded(content)
        path.write_bytes(whole[: len(whole) // 2])
    elif content is not None:
        path.write_bytes(content)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, stdout, stderr = run(monkeypatch, capsys, "segment", str(path), "--annotate", str(out_dir),
                               "--out", str(out_dir / "boxes.parquet"), "--quiet")
    assert code == 2 and stdout == ""
    assert stderr.startswith(f"seqdl: error: {path}: ") and message in stderr, stderr
    assert len(stderr.splitlines()) == 1 and "Traceback" not in stderr
    assert list(out_dir.iterdir()) == []


def test_a_bad_page_in_a_batch_is_reported_and_the_good_one_still_written(tmp_path, monkeypatch, capsys):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    code, stdout, stderr = run(monkeypatch, capsys, "segment", str(EXAMPLE), str(tmp_path / "bad.png"), "--out",
                               str(tmp_path / "boxes.parquet"), "--annotate", str(tmp_path), "--quiet")
    assert code == 3   # docs/conventions.md: a batch finished but some inputs failed
    assert stdout.startswith(f"{EXAMPLE}: 5 lines, 16 words, ")
    assert stderr.startswith(f"seqdl: error: {tmp_path / 'bad.png'}: not an image Pillow can read (")
    assert len(stderr.splitlines()) == 1
    assert set(pq.read_table(tmp_path / "boxes.parquet").column("file").to_pylist()) == {str(EXAMPLE)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.png", "boxes.parquet", "page-emnist.segment.png"]


def test_blank_page_is_zero_lines_and_a_warning(tmp_path, monkeypatch, capsys):
    Image.new("RGB", (800, 600), (243, 240, 230)).save(tmp_path / "blank.jpg")
    code, stdout, stderr = run(monkeypatch, capsys, "segment", str(tmp_path / "blank.jpg"), "--json", "--quiet")
    assert code == 0
    record = json.loads(stdout)
    assert (record["n_lines"], record["n_words"], record["n_letters"], record["lines"]) == (0, 0, 0, [])
    assert stderr == f"seqdl: warning: {tmp_path / 'blank.jpg'}: no text found (blank page?)\n"


def test_json_parquet_and_annotated_png(tmp_path, monkeypatch, capsys):
    out = tmp_path / "boxes.parquet"
    code, stdout, stderr = run(monkeypatch, capsys, "segment", str(EXAMPLE), "--json", "--out", str(out),
                               "--annotate", str(tmp_path), "--quiet")
    assert code == 0, stderr
    record = json.loads(stdout)
    assert record["file"] == str(EXAMPLE) and (record["n_lines"], record["n_words"]) == (5, 16)
    letter_boxes = [box for line in record["lines"] for word in line["words"] for box in word["letters"]]
    assert len(letter_boxes) == record["n_letters"]

    table = pq.read_table(out)
    assert table.column_names == ["file", "line", "word", "index", "x0", "y0", "x1", "y1", "kind", "crop"]
    rows = table.to_pylist()
    assert len(rows) == record["n_letters"] + record["n_cursive_words"]
    assert [[r["x0"], r["y0"], r["x1"], r["y1"]] for r in rows if r["kind"] == "letter"] == letter_boxes
    assert all(len(r["crop"]) == 28 * 28 for r in rows if r["kind"] == "letter")
    order = [(r["line"], r["word"], r["index"]) for r in rows]
    assert order == sorted(order)   # reading order
    meta = {k.decode(): v.decode() for k, v in table.schema.metadata.items()}
    assert meta["seqdl.command"].startswith("seqdl segment ") and "seqdl.version" in meta
    assert json.loads(meta["seqdl.params"])["out"] == str(out)
    inputs = json.loads(meta["seqdl.inputs"])
    assert inputs[0]["path"] == str(EXAMPLE) and len(inputs[0]["sha256"]) == 64
    crops = crops_from_parquet(out)
    assert crops.shape == (record["n_letters"], 28, 28) and crops.dtype == np.uint8

    with Image.open(tmp_path / "page-emnist.segment.png") as annotated:
        assert annotated.format == "PNG" and annotated.size == (record["width"], record["height"])
        drawn = np.asarray(annotated.convert("RGB"))
    assert np.any(np.all(drawn == segment.COLOURS["letter"], axis=2))   # the boxes are drawn on the page


def test_a_failure_while_writing_leaves_no_partial_file(tmp_path, monkeypatch, capsys):
    def broken_write(table, where, **kwargs):
        Path(where).write_bytes(b"PAR1 half a file")
        raise RuntimeError("writer crashed")

    monkeypatch.setattr(pq, "write_table", broken_write)
    code, _, stderr = run(monkeypatch, capsys, "segment", str(EXAMPLE), "--out", str(tmp_path / "boxes.parquet"),
                          "--quiet")
    assert code == 1 and "writer crashed" in stderr and "Traceback" not in stderr
    assert list(tmp_path.iterdir()) == []

    def broken_save(self, where, *args, **kwargs):
        Path(where).write_bytes(b"\x89PNG half")
        raise RuntimeError("writer crashed")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    code, _, _ = run(monkeypatch, capsys, "segment", str(EXAMPLE), "--annotate", str(tmp_path), "--quiet")
    assert code == 1 and list(tmp_path.iterdir()) == []


def test_annotate_creates_its_directory_and_a_missing_out_directory_is_refused(tmp_path, monkeypatch, capsys):
    code, _, stderr = run(monkeypatch, capsys, "segment", str(EXAMPLE), "--annotate", str(tmp_path / "out" / "sub"),
                          "--quiet")
    assert code == 0, stderr
    assert [p.suffix for p in (tmp_path / "out" / "sub").iterdir()] == [".png"]
    (tmp_path / "file").write_text("")
    code, _, stderr = run(monkeypatch, capsys, "segment", str(EXAMPLE), "--annotate", str(tmp_path / "file"))
    assert code == 2 and "--annotate needs a directory; this is a file" in stderr
    code, _, stderr = run(monkeypatch, capsys, "segment", str(EXAMPLE), "--out", str(tmp_path / "no" / "b.parquet"))
    assert code == 2 and "does not exist" in stderr and not (tmp_path / "no").exists()


def test_the_installed_command_prints_a_summary_per_page():
    done = subprocess.run([sys.executable, "-m", "seqdl.cli", "segment", str(EXAMPLE), "--quiet"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.startswith(f"{EXAMPLE}: 5 lines, 16 words, ") and "letters" in done.stdout


def test_image_size_limit_is_configurable(monkeypatch, capsys, tmp_path):
    page = tmp_path / "page.png"
    Image.new("RGB", (2000, 1500), "white").save(page)  # 3 megapixels
    code, _, err = run(monkeypatch, capsys, "segment", str(page), "--max-megapixels", "2")
    assert code == 2 and "decompression bomb" in err and str(page) in err
    code, _, err = run(monkeypatch, capsys, "segment", str(page), "--max-megapixels", "4")
    assert code == 0 and "no text found" in err
