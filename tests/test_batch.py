"""Batch mode on a 2-worker local Dask cluster: same rows as single-process mode, failures isolated, restartable."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from seqdl.batch import MANIFEST, output_name, run_batch
from pipelines.dna_model import default_model_path

distributed = pytest.importorskip("distributed", reason="batch mode needs dask.distributed (the test extra)")

from pipelines import batch_jobs  # noqa: E402
from pipelines.batch_genes import merge_gene_calls  # noqa: E402
from pipelines.fasta import decode, encode, reverse_complement  # noqa: E402
from pipelines.scan import ScanOptions, scan_files  # noqa: E402


def seqdl_cli(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seqdl.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, **kwargs)


@pytest.fixture(scope="module")
def text_model(tiny_text_model) -> Path:
    return tiny_text_model


@pytest.fixture(scope="module")
def dna_model(tiny_dna_model) -> Path:
    return tiny_dna_model


@pytest.fixture(scope="module")
def texts(tmp_path_factory) -> list[Path]:
    rng = np.random.default_rng(1)
    root = tmp_path_factory.mktemp("texts")
    words = ["to", "be", "or", "not", "that", "is", "the", "question", "whether", "tis", "nobler"]
    paths = []
    for i in range(5):
        lines = [" ".join(rng.choice(words, rng.integers(1, 9))) for _ in range(40 + 20 * i)]
        paths.append(root / f"part{i}.txt")
        paths[-1].write_text("\n".join(lines) + "\n")
    return paths


@pytest.fixture(scope="module")
def genomes(tmp_path_factory) -> list[Path]:
    rng = np.random.default_rng(2)
    root = tmp_path_factory.mktemp("genomes")
    paths = []
    for i, length in enumerate((900, 2500, 1300)):
        seq = decode(rng.integers(0, 4, length).astype(np.uint8))
        paths.append(root / f"g{i}.fa")
        paths[-1].write_text(f">rec{i}\n" + "\n".join(seq[j:j + 70] for j in range(0, length, 70)) + "\n")
    return paths


@pytest.fixture(scope="module")
def cluster():
    """One 2-worker local cluster for the tests that call ``run_batch`` directly (starting one takes seconds)."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as local:
        yield local


def rows(paths) -> list[dict]:
    table = ds.dataset([str(p) for p in paths], format="parquet").to_table()
    return sorted(table.to_pylist(), key=lambda r: json.dumps(r, sort_keys=True))


def test_text_batch_matches_single_process_and_loads_the_model_once_per_worker(text_model, texts, tmp_path,
                                                                            cluster):
    job = batch_jobs.text_job(text_model, "utf-8", "strict", "test")
    result = run_batch(job, texts, tmp_path / "out", scheduler=cluster.scheduler_address, quiet=True)
    assert [r["status"] for r in result.records] == ["done"] * len(texts)
    singles = []
    for path in texts:  # single-process mode, one file at a time: the same numbers bit for bit
        single = tmp_path / f"{path.stem}.parquet"
        assert seqdl_cli("eval", "text", path, "--model", text_model, "--per-line", "--out", single,
                         "--quiet").returncode == 0
        singles.append(single)
    outputs = [tmp_path / "out" / r["output"] for r in result.records]
    assert rows(outputs) == rows(singles)
    assert sum(r["rows"] for r in result.records) == sum(pq.read_metadata(p).num_rows for p in singles)
    with distributed.Client(cluster) as client:
        loads = client.run(batch_jobs.model_loads)
    assert sorted(loads.values()) != [0, 0] and max(loads.values()) == 1  # 5 inputs, at most one load per worker


def test_scan_batch_matches_single_process(dna_model, genomes, tmp_path, cluster):
    options = ScanOptions(window=400, stride=200)
    job = batch_jobs.scan_job(dna_model, options, "test")
    result = run_batch(job, genomes, tmp_path / "scans", scheduler=cluster.scheduler_address, quiet=True)
    assert [r["status"] for r in result.records] == ["done"] * len(genomes)
    single = tmp_path / "single.parquet"
    scan_files(genomes, dna_model, single, options, quiet=True)
    outputs = [tmp_path / "scans" / r["output"] for r in result.records]
    assert rows(outputs) == rows([single])
    manifest = pq.read_table(tmp_path / "scans" / MANIFEST).to_pylist()
    assert [m["input"] for m in manifest] == [str(p) for p in genomes]
    assert [m["rows"] for m in manifest] == [pq.read_metadata(p).num_rows for p in outputs]

    again = run_batch(job, genomes, tmp_path / "scans", scheduler=cluster.scheduler_address, quiet=True)
    assert all(r["reused"] for r in again.records)  # same inputs, model and parameters: nothing redone
    changed = batch_jobs.scan_job(dna_model, ScanOptions(window=300, stride=200), "test")
    redone = run_batch(changed, genomes[:1], tmp_path / "scans", scheduler=cluster.scheduler_address, quiet=True)
    assert not redone.records[0]["reused"]  # other parameters: done again


EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "examples" / "ecoli-k12-mg1655-8kb.fa"


@pytest.fixture(scope="module")
def gene_genomes(tmp_path_factory) -> list[Path]:
    """Three inputs the shipped model finds genes in: plain; gzipped, with the first's record name; two records."""
    import gzip

    root = tmp_path_factory.mktemp("gene-genomes")
    seq = "".join(EXAMPLE.read_text().splitlines()[1:])
    plain, zipped, two = root / "ecoli.fa", root / "flipped.fa.gz", root / "halves.fna"
    plain.write_text(f">NC_000913.3\n{seq}\n")
    zipped.write_bytes(gzip.compress(f">NC_000913.3 reverse complement\n{decode(reverse_complement(encode(seq)))}\n"
                                     .encode()))
    two.write_text(f">left\n{seq[:4100]}\n>right\n{seq[4100:]}\n")
    return [plain, zipped, two]


@pytest.mark.skipif(not default_model_path().exists() or not EXAMPLE.exists(), reason="shipped model not built")
def test_scan_batch_writes_the_gene_calls_of_single_process_runs(gene_genomes, tmp_path, cluster):
    options = ScanOptions()
    job = batch_jobs.scan_job(default_model_path(), options, "test")
    out = tmp_path / "scans"
    result = run_batch(job, gene_genomes, out, scheduler=cluster.scheduler_address, quiet=True)
    assert [r["status"] for r in result.records] == ["done"] * 3
    manifest = pq.read_table(out / MANIFEST).to_pylist()
    for path, entry in zip(gene_genomes, manifest):
        stem = output_name(path).removesuffix(".parquet")
        assert entry["side_outputs"] == [f"{stem}.bed", f"{stem}.gff3"]
        single = tmp_path / stem
        scan_files([path], default_model_path(), single.with_suffix(".parquet"), options, bed=single.with_suffix(".bed"),
                   gff=single.with_suffix(".gff3"), quiet=True)
        for suffix in (".bed", ".gff3"):
            assert (out / f"{stem}{suffix}").read_text() == single.with_suffix(suffix).read_text()
    beds = [(out / name).read_text() for entry in manifest for name in entry["side_outputs"] if name.endswith(".bed")]
    assert all(bed.count("\n") >= 3 for bed in beds)
    assert "##sequence-region right 1 3900" in (out / manifest[2]["side_outputs"][1]).read_text()

    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    (out / manifest[1]["side_outputs"][0]).unlink()  # a lost gene file: that input is redone, the others reused
    again = run_batch(job, gene_genomes, out, scheduler=cluster.scheduler_address, quiet=True)
    assert [r["reused"] for r in again.records] == [True, False, True]
    assert (out / manifest[1]["side_outputs"][0]).read_text() == beds[1]
    assert all(stamps[name] == (out / name).stat().st_mtime_ns for entry in (manifest[0], manifest[2])
               for name in [entry["output"], *entry["side_outputs"]])

    merged_bed, merged_gff = tmp_path / "all.bed", tmp_path / "all.gff3"
    genes = merge_gene_calls(again.records, out, merged_bed, merged_gff)
    rows = [line.split("\t") for line in merged_bed.read_text().splitlines()]
    assert genes == len(rows) == sum(bed.count("\n") for bed in beds)
    assert rows == sorted(rows, key=lambda f: (f[0], int(f[1]), int(f[2])))  # bedtools sort order
    assert {f[0] for f in rows} == {"ecoli|NC_000913.3", "flipped|NC_000913.3", "halves|left", "halves|right"}
    assert len({f[3] for f in rows}) == len(rows)  # gene names unique across inputs
    gff = merged_gff.read_text().splitlines()
    assert gff[0] == "##gff-version 3" and sum(line.startswith("##gff-version") for line in gff) == 1
    assert "##sequence-region flipped|NC_000913.3 1 8000" in gff
    ids = [line.split("ID=")[1].split(";")[0] for line in gff if not line.startswith("#")]
    assert len(ids) == len(set(ids)) == len(rows)


@pytest.mark.skipif(not default_model_path().exists() or not EXAMPLE.exists(), reason="shipped model not built")
def test_cli_out_with_a_slash_is_a_new_directory_and_bed_gff_merge_every_input(gene_genomes, tmp_path):
    out = tmp_path / "new" / "scans"
    result = seqdl_cli("scan", *gene_genomes[:2], "--out", f"{out}/", "--bed", tmp_path / "all.bed", "--gff",
                       tmp_path / "all.gff3", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    bed = (tmp_path / "all.bed").read_text()
    assert summary["done"] == 2 and summary["genes"] == bed.count("\n") >= 6
    assert summary["bed"] == str(tmp_path / "all.bed") and summary["gff"] == str(tmp_path / "all.gff3")
    assert {line.split("\t")[0] for line in bed.splitlines()} == {"ecoli|NC_000913.3", "flipped|NC_000913.3"}
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([MANIFEST] + [output_name(p).replace(".parquet", suffix) for p in gene_genomes[:2]
                                         for suffix in (".parquet", ".bed", ".gff3")])
    meta = pq.read_schema(out / output_name(gene_genomes[0])).metadata
    assert meta[b"seqdl.command"].decode().startswith("seqdl scan ") and b"--bed" in meta[b"seqdl.command"]

    result = seqdl_cli("scan", gene_genomes[0], "--out", out, "--bedgraph", tmp_path / "t.bedgraph")
    assert result.returncode == 2 and "--bedgraph" in result.stderr


def test_cli_batch_isolates_a_bad_input_and_exits_3(text_model, texts, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\n\xff\xfe broken\n")
    listing = tmp_path / "inputs.txt"
    listing.write_text("\n".join(str(p) for p in texts[:2]) + f"\n# a comment\n{bad}\n")
    out = tmp_path / "scores"
    result = seqdl_cli("eval", "text", "--from-list", listing, "--model", text_model, "--per-line", "--out", out,
                       "--workers", "2", "--json")
    assert result.returncode == 3, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["status"] for r in records[:-1]] == ["done", "done", "failed"]
    assert "invalid utf-8 at byte offset 5" in records[2]["error"] and str(bad) in records[2]["error"]
    assert records[-1]["failed"] == 1 and records[-1]["done"] == 2
    assert f"seqdl: error: {bad}: invalid utf-8" in result.stderr and "Traceback" not in result.stderr
    manifest = pq.read_table(out / MANIFEST).to_pylist()
    assert [m["status"] for m in manifest] == ["done", "done", "failed"]
    assert sorted(p.name for p in out.iterdir()) == sorted([MANIFEST] + [output_name(p) for p in texts[:2]])


def test_killed_batch_reruns_without_redoing_finished_inputs(text_model, tmp_path):
    rng = np.random.default_rng(3)
    inputs = []
    for i in range(8):  # big enough that the batch is still running when the first file lands
        inputs.append(tmp_path / f"doc{i}.txt")
        inputs[-1].write_text("\n".join("".join(rng.choice(list("abc de\n"), 70)) for _ in range(1500)) + "\n")
    out = tmp_path / "scores"
    args = ["eval", "text", *inputs, "--model", text_model, "--per-line", "--out", out, "--workers", "1", "--quiet"]
    process = subprocess.Popen([sys.executable, "-m", "seqdl.cli", *map(str, args)], start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(out.glob("doc*.parquet")) and process.poll() is None:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the CLI and its Dask workers
    process.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in out.glob("doc*.parquet")}
    assert 0 < len(finished) < len(inputs), "the kill should land mid-batch"
    assert not (out / MANIFEST).exists()

    result = seqdl_cli(*args[:-1], "--json")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()][:-1]
    reused = {r["output"] for r in records if r["reused"]}
    assert reused == set(finished)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("doc*.parquet") if p.name in finished} == finished
    assert not [p for p in out.iterdir() if p.name.endswith(".seqdl-tmp")]  # temp files of killed writers are gone

    single = tmp_path / "single.parquet"
    assert seqdl_cli("eval", "text", *inputs, "--model", text_model, "--per-line", "--out", single,
                     "--quiet").returncode == 0
    batch_rows = ds.dataset([str(out / r["output"]) for r in records], format="parquet").to_table()
    single_rows = pq.read_table(single)
    assert batch_rows.num_rows == single_rows.num_rows  # no row lost or duplicated
    key = ["file", "line_number"]
    assert sorted(batch_rows.select(key).to_pylist(), key=str) == sorted(single_rows.select(key).to_pylist(), key=str)
    assert np.allclose(np.sort(batch_rows["nats_per_char"].to_numpy()), np.sort(single_rows["nats_per_char"].to_numpy()),
                       atol=1e-5)


def test_batch_refuses_bad_options(text_model, texts, tmp_path):
    result = seqdl_cli("eval", "text", texts[0], "--model", text_model, "--out", tmp_path, "--workers", "2")
    assert result.returncode == 2 and "--per-line" in result.stderr
    result = seqdl_cli("eval", "text", texts[0], "--model", text_model, "--per-line", "--out", tmp_path / "x",
                       "--workers", "0")
    assert result.returncode == 2 and "--workers 0: input should be greater than or equal to 1" in result.stderr
    result = seqdl_cli("eval", "text", "--model", text_model, "--per-line", "--out", tmp_path / "x", "--workers", "1")
    assert result.returncode == 2 and "no inputs" in result.stderr
    assert not (tmp_path / "x").exists()
