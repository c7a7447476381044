"""The README's pandas and DuckDB one-liners, run exactly as written on a real batch output (the analysis extra)."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pipelines.fasta import decode

pytest.importorskip("pandas", reason="the analysis extra: pip install -e '.[analysis]'")
pytest.importorskip("duckdb", reason="the analysis extra: pip install -e '.[analysis]'")
pytest.importorskip("distributed", reason="batch mode needs dask.distributed (the test extra)")

README = Path(__file__).resolve().parents[1] / "README.md"
SNIPPET = re.compile(r'^python -c "import [\w ,]*\b(pandas|duckdb)\b.*"$', re.MULTILINE)


def snippets() -> dict[str, str]:
    """The README's one-liners, by the library they show."""
    return {match.group(1): match.group(0) for match in SNIPPET.finditer(README.read_text())}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tiny_dna_model) -> Path:
    """A directory holding ``scans/`` as the README's batch command makes it: a file per genome and a manifest."""
    from pipelines.batch_jobs import scan_job
    from pipelines.scan import ScanOptions
    from seqdl.batch import run_batch

    root = tmp_path_factory.mktemp("readme")
    rng = np.random.default_rng(4)
    genomes = []
    for name, length in (("alpha", 1500), ("beta", 900)):
        genomes.append(root / f"{name}.fa")
        genomes[-1].write_text(f">{name}_chr\n{decode(rng.integers(0, 4, length).astype(np.uint8))}\n")
    run_batch(scan_job(tiny_dna_model, ScanOptions(), "test"), genomes, root / "scans", workers=1, quiet=True)
    return root


def test_the_readme_has_both_snippets():
    assert sorted(snippets()) == ["duckdb", "pandas"]


@pytest.mark.parametrize("library", sorted(snippets()))
def test_readme_snippet_runs_as_written(library, workdir):
    line = snippets()[library]
    result = subprocess.run(["bash", "-c", line], cwd=workdir, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "alpha_chr" in result.stdout and "beta_chr" in result.stdout  # one row per record of every genome
