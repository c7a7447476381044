"""The streaming FASTA reader: formats, chunking with overlap, reverse complement, and every bad input."""
from __future__ import annotations

import gzip

import numpy as np
import pytest

from pipelines.fasta import FastaReader, decode, encode, read_records, reverse_complement
from seqdl.errors import SeqdlError


def write(path, text: str | bytes, gz: bool = False):
    data = text.encode() if isinstance(text, str) else text
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def test_records_crlf_lowercase_iupac_and_line_lengths(tmp_path):
    fasta = write(tmp_path / "a.fa", ">one first record\r\nACGTacgt\r\nNRYK\r\n>two\nACG\nT\nTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTT\n"
                                     ">three\nuuuu-\n")
    records = read_records(fasta)
    assert list(records) == ["one", "two", "three"]
    assert decode(records["one"]) == "ACGTACGTNNNN"  # soft-masked lowercase read as uppercase, IUPAC as N
    assert decode(records["two"]) == "ACGT" + "T" * 34
    assert decode(records["three"]) == "TTTTN"


def test_empty_record_among_others_is_skipped_with_a_warning(tmp_path, capsys):
    fasta = write(tmp_path / "a.fa", ">empty\n>full\nACGT\n>also_empty\n\n")
    assert list(read_records(fasta)) == ["full"]
    err = capsys.readouterr().err
    assert "'empty'" in err and "'also_empty'" in err and "skipped" in err


def test_only_empty_records_give_one_error_line_and_no_warnings(tmp_path, capsys):
    with pytest.raises(SeqdlError, match="only empty records"):
        read_records(write(tmp_path / "a.fa", ">a\n>b\n\n"))
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("chunk,overlap", [(1, 0), (3, 2), (7, 5), (64, 10), (10_000, 100)])
def test_chunks_tile_each_record_with_context(tmp_path, chunk, overlap):
    rng = np.random.default_rng(0)
    seqs = {f"r{i}": decode(rng.integers(0, 4, n).astype(np.uint8)) for i, n in enumerate([1, 50, 333])}
    text = "".join(f">{name}\n" + "\n".join(s[i:i + 13] for i in range(0, len(s), 13)) + "\n" for name, s in seqs.items())
    fasta = write(tmp_path / "a.fa.gz", text, gz=True)
    cores: dict[str, str] = {}
    for c in FastaReader(fasta, chunk_size=chunk, overlap=overlap):
        full = seqs[c.record]
        assert decode(c.codes) == full[c.start:c.start + len(c.codes)]
        assert c.start == max(c.core_start - overlap, 0)
        assert c.start + len(c.codes) == min(c.core_end + overlap, len(full))
        assert c.core_start == len(cores.get(c.record, ""))  # cores follow on without gaps
        assert c.last == (c.core_end == len(full))
        cores[c.record] = cores.get(c.record, "") + decode(c.core)
    assert cores == seqs


def test_gzip_and_plain_give_the_same_codes(tmp_path):
    text = ">x\n" + "ACGTTGCA" * 1000 + "\n"
    plain = read_records(write(tmp_path / "a.fa", text))
    zipped = read_records(write(tmp_path / "a.fa.gz", text, gz=True))
    assert np.array_equal(plain["x"], zipped["x"])


def test_reverse_complement_is_exact():
    assert decode(reverse_complement(encode("AACGTN"))) == "NACGTT"
    seq = np.random.default_rng(1).integers(0, 5, 1001).astype(np.uint8)
    assert np.array_equal(reverse_complement(reverse_complement(seq)), seq)


@pytest.mark.parametrize("content,message", [
    (b"", "is empty"),
    (b"\n\n", "holds no FASTA records"),
    (b">a\n>b\n", "only empty records"),
    (b">p\nMKVLAAGIVALLLAAGCSSEQ\n", "record 'p', line 2: looks like protein FASTA"),
    (b"@read1\nACGT\n+\nIIII\n", "looks like FASTQ"),
    (b"LOCUS       NC_000907 1830138 bp    DNA\n", "looks like GenBank"),
    (b"\x00\x01\x02binary\xff", "binary"),
    (b">a\nACGT\nAC1T\n", "record 'a', line 3: non-sequence character '1'"),
    (b">a\nACGT\n>a\nACGT\n", "line 3: duplicate record name 'a'"),
    (b"ACGT\n", "expected a '>' header"),
])
def test_bad_files_are_refused_naming_file_record_and_line(tmp_path, content, message):
    path = write(tmp_path / "bad.fa", content)
    with pytest.raises(SeqdlError, match=message) as info:
        list(FastaReader(path))
    assert str(path) in str(info.value)


def test_truncated_gzip_is_refused(tmp_path):
    data = gzip.compress((">a\n" + "ACGT" * 5000 + "\n").encode())
    path = write(tmp_path / "cut.fa.gz", data[: len(data) // 2])
    with pytest.raises(SeqdlError, match="truncated or corrupt gzip"):
        list(FastaReader(path))


def test_directory_and_missing_file(tmp_path):
    with pytest.raises(SeqdlError, match="is a directory"):
        list(FastaReader(tmp_path))
    with pytest.raises(SeqdlError, match="no such file"):
        list(FastaReader(tmp_path / "nope.fa"))
