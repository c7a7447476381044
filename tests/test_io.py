"""Shared output helpers: atomic writes leave nothing partial, inputs expand predictably, provenance is complete."""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import stat

import pytest

from seqdl.errors import SeqdlError
from seqdl.io import (
    atomic_open, atomic_path, check_output_path, expand_inputs, gzip_errors, is_gzip, open_input, parquet_metadata,
    provenance, stored_file,
)


def test_atomic_write_replaces_only_on_success_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as handle:
            handle.write("half of the new")
            raise RuntimeError("crash while writing")
    assert target.read_text() == "old" and sorted(tmp_path.iterdir()) == [target]
    with atomic_open(target) as handle:
        handle.write("new")
    assert target.read_text() == "new" and sorted(tmp_path.iterdir()) == [target]


def test_atomic_files_get_the_usual_permissions_even_from_owner_only_writers(tmp_path):
    umask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "model.bin") as temp:
            fd = os.open(temp, os.O_CREAT | os.O_WRONLY, 0o600)  # as safetensors' writer creates its files
            os.close(fd)
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "model.bin").stat().st_mode) == 0o644


def test_output_paths_are_checked_before_any_work(tmp_path):
    with pytest.raises(SeqdlError, match="does not exist"):
        check_output_path(tmp_path / "missing" / "out.parquet")
    with pytest.raises(SeqdlError, match="is a directory"):
        check_output_path(tmp_path)
    assert check_output_path(tmp_path / "out.parquet") == tmp_path / "out.parquet"


def test_inputs_expand_globs_in_order_and_refuse_what_is_not_a_file(tmp_path):
    for name in ("b.txt", "a.txt", "c.fa"):
        (tmp_path / name).write_text(name)
    (tmp_path / "sub").mkdir()
    found = expand_inputs([tmp_path / "c.fa", str(tmp_path / "*.txt")])
    assert [p.name for p in found] == ["c.fa", "a.txt", "b.txt"]
    with pytest.raises(SeqdlError, match="no file matches"):
        expand_inputs([str(tmp_path / "*.gz")])
    with pytest.raises(SeqdlError, match="no such file"):
        expand_inputs([tmp_path / "missing.txt"])
    with pytest.raises(SeqdlError, match="is a directory"):
        expand_inputs([tmp_path / "sub"])


def test_provenance_names_version_command_parameters_inputs_and_model_with_checksums(tmp_path):
    data, model = tmp_path / "in.txt", tmp_path / "m.safetensors"
    data.write_bytes(b"some text")
    model.write_bytes(b"weights")
    meta = provenance("textgen", {"temperature": 0.8}, [data], model)
    assert json.loads(meta["seqdl.params"]) == {"temperature": 0.8} and meta["seqdl.command"] == "textgen"
    assert json.loads(meta["seqdl.inputs"]) == [{"path": str(data), "sha256": hashlib.sha256(b"some text").hexdigest()}]
    assert meta["seqdl.model_sha256"] == hashlib.sha256(b"weights").hexdigest() and meta["seqdl.version"]


def test_stale_temps_of_dead_writers_are_removed(tmp_path):
    import subprocess
    import sys

    from seqdl.io import TEMP_SUFFIX, remove_stale_temps

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".out.parquet.{dead.stdout.strip()}.0123abcd{TEMP_SUFFIX}"
    live = tmp_path / f".out.parquet.{os.getpid()}.4567abcd{TEMP_SUFFIX}"
    for path in (stale, live, tmp_path / "out.parquet"):
        path.write_bytes(b"x")
    assert remove_stale_temps(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "out.parquet"])


def test_inputs_open_by_content_not_by_name(tmp_path):
    """A gzip file is decompressed whatever its name; a plain file named .gz is read as it is."""
    text = b"line one\nline two\n" * 500
    (tmp_path / "packed.txt").write_bytes(gzip.compress(text))
    (tmp_path / "plain.gz").write_bytes(text)
    for name in ("packed.txt", "plain.gz"):
        with open_input(tmp_path / name) as handle, gzip_errors(tmp_path / name):
            assert handle.read() == text
            assert stored_file(handle).tell() == (tmp_path / name).stat().st_size  # progress is in bytes on disk
    assert is_gzip(tmp_path / "packed.txt") and not is_gzip(tmp_path / "plain.gz")


def test_unopenable_and_damaged_inputs_are_one_error_naming_the_file(tmp_path):
    with pytest.raises(SeqdlError, match=f"^{tmp_path / 'nope.fa'}: no such file$"):
        open_input(tmp_path / "nope.fa")
    with pytest.raises(SeqdlError, match="is a directory, expected a FASTA file$"):
        open_input(tmp_path, "a FASTA file")
    damaged = {"truncated.gz": gzip.compress(os.urandom(5000))[:-100],
               "bad-crc.gz": gzip.compress(b"abc" * 100)[:-8] + b"\0" * 8,
               "corrupt.gz": gzip.compress(b"abc" * 100)[:12] + b"\xff" * 40}
    for name, data in damaged.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(SeqdlError, match=f"^{tmp_path / name}: truncated or corrupt gzip data"):
            with open_input(tmp_path / name) as handle, gzip_errors(tmp_path / name):
                handle.read()


def test_parquet_metadata_is_text_without_pandas_entry(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"x": [1]}).replace_schema_metadata({"seqdl.command": "seqdl scan", "pandas": "{}"})
    pq.write_table(table, tmp_path / "t.parquet")
    assert parquet_metadata(pq.read_schema(tmp_path / "t.parquet").metadata) == {"seqdl.command": "seqdl scan"}
    assert parquet_metadata(None) == {}
