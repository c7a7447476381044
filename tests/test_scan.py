"""``seqdl scan``: windows, coordinates, Parquet schema and provenance, chunk/gzip invariance, bad inputs."""
from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import seqdl
from pipelines.dna_model import default_model_path
from pipelines.fasta import decode, encode, reverse_complement
from pipelines.scan import SCHEMA, ScanOptions, read_scan_metadata, scan_files
from seqdl.io import sha256_file

EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "examples" / "ecoli-k12-mg1655-8kb.fa"


def seqdl_cli(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seqdl.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


@pytest.fixture(scope="module")
def tiny_model(tiny_dna_model) -> Path:
    return tiny_dna_model


@pytest.fixture(scope="module")
def genome(tmp_path_factory) -> Path:
    rng = np.random.default_rng(5)
    path = tmp_path_factory.mktemp("genome") / "g.fa"
    lines = []
    for name, length in (("chr1", 1234), ("chr2", 300), ("short", 70)):
        seq = decode(rng.integers(0, 4, length).astype(np.uint8))
        if name == "chr1":
            seq = seq[:400] + "N" * 50 + seq[450:]
        lines.append(f">{name} test\n" + "\n".join(seq[i:i + 60] for i in range(0, len(seq), 60)))
    path.write_text("\n".join(lines) + "\n")
    return path


def scan_table(paths, model, tmp_path, name, **options):
    out = tmp_path / f"{name}.parquet"
    bed = tmp_path / f"{name}.bed"
    scan_files(paths, model, out, ScanOptions(**options), bed=bed, gff=tmp_path / f"{name}.gff3",
               bedgraph=tmp_path / f"{name}.bedgraph", quiet=True)
    return pq.read_table(out), bed.read_text()


def test_windows_cover_every_record_on_both_strands(tiny_model, genome, tmp_path):
    table, _ = scan_table([genome], tiny_model, tmp_path, "w", window=100, stride=50)
    assert table.schema.remove_metadata() == SCHEMA
    rows = table.to_pylist()
    chr1 = [r for r in rows if r["record"] == "chr1" and r["strand"] == "+"]
    assert [(r["start"], r["end"]) for r in chr1][:2] == [(0, 100), (50, 150)]
    assert chr1[-1]["end"] == 1234 and chr1[-1]["start"] == 1150  # last window reaches the end, partial
    short = [r for r in rows if r["record"] == "short"]
    assert [(r["start"], r["end"], r["strand"]) for r in short] == [(0, 70, "+"), (0, 70, "-")]  # one partial window
    by_key = {(r["record"], r["start"], r["strand"]): r for r in rows}
    masked = by_key[("chr1", 400, "+")]
    assert masked["fraction_n"] == pytest.approx(0.5)
    plus, minus = by_key[("chr1", 0, "+")], by_key[("chr1", 0, "-")]
    assert plus["gc"] == minus["gc"] and plus["gc_skew"] == pytest.approx(-minus["gc_skew"])
    scored = [r for r in rows if (r["end"] - r["start"]) * (1 - r["fraction_n"]) >= ScanOptions().calls.min_length]
    assert len(scored) > len(rows) // 2
    assert all(0 <= r["coding_probability"] <= 1 and 0 < r["bits_per_base"] < 10 for r in scored)
    unscored = [r for r in rows if r not in scored]  # the 70 bp record; windows half N
    assert {r["record"] for r in unscored} == {"short", "chr1"} and masked in unscored
    assert all(r["coding_probability"] is None and r["bits_per_base"] is None for r in unscored)
    assert all(r["gc"] is not None for r in unscored)  # counting bases needs no model


def test_gc_of_a_known_window(tiny_model, tmp_path):
    fasta = tmp_path / "gc.fa"
    fasta.write_text(">x\n" + "GGGGCCAATT" * 10 + "A" * 100 + "\n")
    rows = scan_table([fasta], tiny_model, tmp_path, "gc", window=100, stride=100)[0].to_pylist()
    first = [r for r in rows if r["start"] == 0]
    assert first[0]["gc"] == pytest.approx(0.6) and first[0]["gc_skew"] == pytest.approx(2 / 6)
    assert first[1]["gc_skew"] == pytest.approx(-2 / 6)
    assert [r["gc"] for r in rows if r["start"] == 100] == [0.0, 0.0]


def test_provenance_metadata(tiny_model, genome, tmp_path):
    out = tmp_path / "p.parquet"
    scan_files([genome], tiny_model, out, ScanOptions(window=200, stride=200), quiet=True, command="seqdl scan g.fa")
    meta = read_scan_metadata(out)
    assert meta["seqdl.command"] == "seqdl scan g.fa" and meta["seqdl.version"] == seqdl.__version__
    assert meta["seqdl.inputs"] == [{"path": str(genome), "sha256": sha256_file(genome)}]
    assert meta["seqdl.model_sha256"] == sha256_file(tiny_model)
    assert meta["seqdl.params"]["window"] == 200


def test_same_output_plain_or_gzip_and_any_chunk_size(tiny_model, genome, tmp_path):
    zipped = tmp_path / "g.fa.gz"
    zipped.write_bytes(gzip.compress(genome.read_bytes()))
    reference, _ = scan_table([genome], tiny_model, tmp_path, "a", window=100, stride=30, chunk_tiles=100)
    for name, path, tiles in (("b", zipped, 100), ("c", genome, 1), ("d", zipped, 3)):
        table, _ = scan_table([path], tiny_model, tmp_path, name, window=100, stride=30, chunk_tiles=tiles)
        assert table.column("start").to_pylist() == reference.column("start").to_pylist()
        for column in ("gc", "gc_skew", "fraction_n", "coding_probability", "bits_per_base"):
            np.testing.assert_allclose(table.column(column).to_numpy(), reference.column(column).to_numpy(),
                                       rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not default_model_path().exists() or not EXAMPLE.exists(), reason="shipped model not built")
def test_shipped_model_calls_the_same_genes_whatever_the_chunk_size(tmp_path):
    reference, bed = scan_table([EXAMPLE], default_model_path(), tmp_path, "r", chunk_tiles=100)
    assert bed.count("\n") >= 3  # the thr operon and its neighbours
    for tiles in (1, 2):
        table, other = scan_table([EXAMPLE], default_model_path(), tmp_path, f"c{tiles}", chunk_tiles=tiles,
                                  margin=3000)
        assert other == bed
        assert table.column("called_gene_bases").to_pylist() == reference.column("called_gene_bases").to_pylist()


def test_cli_writes_all_outputs_and_json(tiny_model, genome, tmp_path):
    result = seqdl_cli("scan", genome, genome.with_name("*.fa"), "--model", tiny_model, "--out", tmp_path / "s.parquet",
                       "--bed", tmp_path / "s.bed", "--gff", tmp_path / "s.gff3", "--bedgraph", tmp_path / "t.bedgraph",
                       "--window", "300", "--stride", "300", "--json", "--quiet")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 3 and lines[0]["records"] == 3 and lines[-1]["bases"] == 2 * (1234 + 300 + 70)
    assert (tmp_path / "s.gff3").read_text().startswith("##gff-version 3\n")
    track = (tmp_path / "t.coding_plus.bedgraph").read_text().splitlines()
    assert track[0].startswith("track type=bedGraph") and track[1].split("\t")[:3] == ["chr1", "0", "300"]


@pytest.mark.parametrize("content,args,message", ids=lambda value: str(value)[:20], argvalues=[
    (b"", [], "is empty"),
    (b">p\nMKLVVLLAPQE\n", [], "looks like protein FASTA"),
    (b"@r\nACGT\n+\nIIII\n", [], "looks like FASTQ"),
    (b">a\nACGT\n", ["--window", "0"], "--window 0: input should be greater than or equal to 1"),
    (b">a\nACGT\n", ["--stride", "-5"], "--stride -5: input should be greater than or equal to 1"),
    (b">a\nACGT\n>b\nAC\nA%T\n", [], "record 'b', line 5: non-sequence character '%'"),
    (b"LOCUS       NC_000907 1830138 bp    DNA\n", [], "looks like GenBank"),
    (gzip.compress(b">a\n" + np.random.default_rng(0).choice(list(b"ACGT"), 50_000).astype(np.uint8).tobytes())
     [:5000], [], "truncated or corrupt gzip"),
    (bytes(range(256)) * 4, [], "binary"),
    (b">a\n>b\n", [], "holds only empty records"),
    (b"\n\n", [], "holds no FASTA records"),
])
def test_bad_input_one_line_exit_2_no_outputs(tiny_model, tmp_path, content, args, message):
    fasta = tmp_path / "in.fa"
    fasta.write_bytes(content)
    outputs = [tmp_path / "o.parquet", tmp_path / "o.bed", tmp_path / "o.gff3"]
    result = seqdl_cli("scan", fasta, "--model", tiny_model, "--out", outputs[0], "--bed", outputs[1], "--gff",
                       outputs[2], "--quiet", *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("seqdl: error: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.fa"]


def test_missing_input_and_output_directory(tiny_model, genome, tmp_path):
    result = seqdl_cli("scan", tmp_path / "nope.fa", "--model", tiny_model, "--out", tmp_path / "o.parquet")
    assert result.returncode == 2 and "no such file" in result.stderr
    result = seqdl_cli("scan", genome, "--model", tiny_model, "--out", tmp_path / "missing" / "o.parquet")
    assert result.returncode == 2 and "does not exist" in result.stderr
    result = seqdl_cli("scan", tmp_path, "--model", tiny_model, "--out", tmp_path / "o.parquet")
    assert result.returncode == 2 and "is a directory" in result.stderr
    assert not (tmp_path / "o.parquet").exists()


def test_empty_record_among_others_is_skipped_with_one_warning(tiny_model, tmp_path):
    fasta = tmp_path / "in.fa"
    fasta.write_text(">empty\n>full\n" + "ACGT" * 30 + "\n")
    result = seqdl_cli("scan", fasta, "--model", tiny_model, "--out", tmp_path / "o.parquet", "--quiet", "--json")
    assert result.returncode == 0 and result.stderr.count("warning") == 1 and "'empty'" in result.stderr
    assert set(pq.read_table(tmp_path / "o.parquet").column("record").to_pylist()) == {"full"}


def test_progress_counts_the_bytes_of_the_file_as_stored(tiny_model, tmp_path):
    from contextlib import ExitStack

    from pipelines.dna_model import load_dna_model
    from pipelines.scan import Outputs, _scan_file

    seq = decode(np.random.default_rng(3).integers(0, 4, 100_000).astype(np.uint8))
    plain, zipped = tmp_path / "p.fa", tmp_path / "z.fa.gz"
    plain.write_text(">r\n" + "\n".join(seq[i:i + 70] for i in range(0, len(seq), 70)) + "\n")
    zipped.write_bytes(gzip.compress(plain.read_bytes()))
    model, _ = load_dna_model(tiny_model)
    for path, advancing in ((plain, 5), (zipped, 1)):  # gzip reads its file 128 kB at a time: ~30 kB in one go
        steps: list[int] = []
        with ExitStack() as stack:
            outputs = Outputs(stack, tmp_path / "o.parquet", {}, None, None, None, 500)
            _scan_file(path, model, ScanOptions(chunk_tiles=200), outputs, steps.append)
            outputs.finish()
        assert sum(steps) == path.stat().st_size and min(steps) >= 0  # the bytes as stored, all of them
        assert len([n for n in steps if n > 0]) >= advancing
    assert zipped.stat().st_size < plain.stat().st_size / 3


def test_a_record_too_short_to_judge_gets_null_scores(tiny_model, tmp_path):
    fasta = tmp_path / "tiny.fa"
    fasta.write_text(">ten\nACGTACGTAC\n>long\n" + "ACGGT" * 40 + "\n")
    rows = scan_table([fasta], tiny_model, tmp_path, "t")[0].to_pylist()
    ten = [r for r in rows if r["record"] == "ten"]
    assert len(ten) == 2 and all(r["coding_probability"] is None and r["bits_per_base"] is None for r in ten)
    assert ten[0]["gc"] == pytest.approx(0.5)
    assert all(r["coding_probability"] is not None for r in rows if r["record"] == "long")  # 200 bp: scored


@pytest.mark.skipif(not default_model_path().exists() or not EXAMPLE.exists(), reason="shipped model not built")
def test_gff3_names_every_record_before_its_features(tmp_path):
    fasta = tmp_path / "two.fa"
    seq = "".join(EXAMPLE.read_text().splitlines()[1:])
    fasta.write_text(f">first\n{seq[:5000]}\n>empty\n>second\n{seq[5000:]}\n")
    _, bed = scan_table([fasta], default_model_path(), tmp_path, "two")
    lines = (tmp_path / "two.gff3").read_text().splitlines()
    assert lines[0] == "##gff-version 3"
    regions = [i for i, line in enumerate(lines) if line.startswith("##sequence-region")]
    assert [lines[i] for i in regions] == ["##sequence-region first 1 5000", f"##sequence-region second 1 {len(seq) - 5000}"]
    for i, line in enumerate(lines[1:], start=1):
        if not line.startswith("#"):
            record = line.split("\t")[0]
            assert lines[max(r for r in regions if r < i)].split()[1] == record
    assert len([line for line in lines if not line.startswith("#")]) == bed.count("\n") >= 3


def _bed_genes(bed: str) -> set[tuple[int, int, str]]:
    return {(int(f[1]), int(f[2]), f[5]) for f in (line.split("\t") for line in bed.splitlines())}


@pytest.mark.skipif(not default_model_path().exists() or not EXAMPLE.exists(), reason="shipped model not built")
def test_shipped_model_finds_known_genes_on_their_strands(tmp_path):
    """thrA (337..2799, +) and yaaA (complement(5683..6459)) of E. coli: exact stop codons, right strands, and
    the reverse complement of the sequence gives the mirror image of every call's stop codon."""
    table, bed = scan_table([EXAMPLE], default_model_path(), tmp_path, "k", window=1000, stride=1000)
    genes = _bed_genes(bed)
    assert any(end == 2799 and strand == "+" for _, end, strand in genes)
    assert any(start == 5682 and strand == "-" for start, _, strand in genes)
    rows = {(r["start"], r["strand"]): r for r in table.to_pylist()}
    assert rows[(1000, "+")]["coding_probability"] > 0.8 > 0.2 > rows[(1000, "-")]["coding_probability"]
    for strand in "+-":  # called bases of a window: its overlap with the genes in the BED, on that strand
        overlap = sum(max(0, min(end, 7000) - max(start, 6000)) for start, end, s in genes if s == strand)
        assert rows[(6000, strand)]["called_gene_bases"] == overlap
    assert rows[(6000, "-")]["called_gene_bases"] >= 459  # yaaA's last 459 bases at least
    seq = "".join(EXAMPLE.read_text().splitlines()[1:])
    flipped = tmp_path / "rc.fa"
    flipped.write_text(">rc\n" + decode(reverse_complement(encode(seq))) + "\n")
    _, bed_rc = scan_table([flipped], default_model_path(), tmp_path, "rc")
    n = len(seq)
    mirrored = {(n - end, n - start, "+" if strand == "-" else "-") for start, end, strand in genes}
    stops = {(end - 1 if strand == "+" else start, strand) for start, end, strand in _bed_genes(bed_rc)}
    assert stops == {(end - 1 if strand == "+" else start, strand) for start, end, strand in mirrored}
    assert len(_bed_genes(bed_rc) & mirrored) >= len(genes) - 1  # a start codon may differ: the model is not
    # exactly symmetric under reverse complement, the coordinates are


def test_the_models_run_on_one_blas_thread_whatever_limit_the_caller_set(tiny_model, genome, tmp_path, monkeypatch):
    # the scan scores on a thread of its own; a limit that thread sets did not hold after the caller had set a
    # count of its own (a command's thread plan, a batch worker's share): every product then ran on two threads
    from threadpoolctl import threadpool_info, threadpool_limits

    import pipelines.dna_model as dna_model
    seen = []
    original = dna_model._coding_probs

    def spy(*args):  # NumPy's BLAS: the one its products use (SciPy's loads during the scan, idle)
        seen.extend(p["num_threads"] for p in threadpool_info()
                    if p["user_api"] == "blas" and "numpy" in p["filepath"])
        return original(*args)

    monkeypatch.setattr(dna_model, "_coding_probs", spy)
    with threadpool_limits(limits=2, user_api="blas"):
        scan_table([genome], tiny_model, tmp_path, "limited")
    if not seen:
        pytest.skip("NumPy's BLAS is not a library threadpoolctl finds inside numpy here")
    assert set(seen) == {1}
