"""The CLI's shared behaviour: results on stdout, one-line errors with exit code 2, JSON output, help, --debug.

Most cases call :func:`seqdl.cli.main` in this process (what the ``seqdl`` console script calls);
one runs ``python -m seqdl.cli`` as a user's shell would.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import typer

import seqdl
from seqdl import cli
from seqdl.metrics import MetricLogger


def test_info_describes_environment_and_models(run, tmp_path):
    import numba

    code, out, _ = run("info", "--json")
    record = json.loads(out)
    assert code == 0 and record["seqdl_version"] == seqdl.__version__ and record["numba"] == numba.__version__
    seqdl.save(tmp_path / "m.safetensors", seqdl.nn.Linear(3, 2), kind="letters", config={"classes": 2})
    code, out, _ = run("info", tmp_path / "m.safetensors", "--json")
    record = json.loads(out)
    assert code == 0 and record["kind"] == "letters" and record["n_parameters"] == 8


def test_plot_writes_png_and_errors_are_one_line(run, tmp_path):
    with MetricLogger(tmp_path / "m.parquet") as logger:
        for step in range(5):
            logger.log(step, loss=float(np.exp(-step)))
    code, _, err = run("plot", tmp_path / "m.parquet", "-o", tmp_path / "c.png")
    assert code == 0 and (tmp_path / "c.png").stat().st_size > 1000, err
    code, out, _ = run("plot", tmp_path / "m.parquet", "-o", tmp_path / "j.png", "--json")
    assert json.loads(out) == {"metrics": str(tmp_path / "m.parquet"), "out": str(tmp_path / "j.png")}
    code, out, _ = run("plot", tmp_path / "m.parquet", "-o", tmp_path / "q.png", "--quiet")
    assert code == 0 and out == "" and (tmp_path / "q.png").is_file()
    code, out, err = run("plot", tmp_path / "nope.parquet", "-o", tmp_path / "d.png")
    assert code == 2 and out == ""
    assert err.strip() == f"seqdl: error: {tmp_path / 'nope.parquet'}: no such file"
    code, _, err = run("plot", tmp_path / "m.parquet", "-o", tmp_path / "missing" / "c.png")
    assert code == 2 and "does not exist" in err and "Traceback" not in err


@pytest.mark.parametrize("args, line", [
    (["frobnicate"], "seqdl: error: No such command 'frobnicate'."),
    (["segment"], "seqdl: error: Missing argument 'IMAGE'."),
    (["scan", "x.fa", "--window", "0"], "seqdl: error: --window 0: input should be greater than or equal to 1"),
    (["scan", "x.fa", "--stride", "many"], "seqdl: error: --stride many: input should be a valid integer, unable to parse "
                                           "string as an integer"),
    (["textgen", "--cell", "rnn"], "seqdl: error: --cell rnn: 'rnn' is not one of 'gru', 'lstm'"),
    (["quantize", "m.safetensors", "--out", "q.safetensors", "--bits", "3"],
     "seqdl: error: --bits 3: '3' is not one of '8', '4'"),
    (["plot", "m.parquet", "-o", "p.png", "--x", "minutes"], "seqdl: error: --x minutes: 'minutes' is not one of 'step', "
                                                             "'seconds'"),
])
def test_usage_errors_are_one_line_exit_2(run, tmp_path, monkeypatch, args, line):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(*args)
    assert (code, out, err) == (2, "", line + "\n")
    assert list(tmp_path.iterdir()) == []


def test_corrupt_model_is_one_line(run, tmp_path):
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 100)
    code, _, err = run("info", tmp_path / "bad.safetensors")
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("seqdl: error:")


def test_no_command_shows_help_and_exits_2(run):
    code, out, err = run()
    assert code == 2 and "Usage: seqdl" in out and err == ""
    code, out, err = run("train")
    assert code == 2 and "Usage: seqdl train" in out and err == ""


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback_of_an_internal_error(run, tmp_path, monkeypatch, where):
    from seqdl import checkpoint

    seqdl.save(tmp_path / "m.safetensors", seqdl.nn.Linear(3, 2), kind="letters", config={})
    monkeypatch.setattr(checkpoint, "describe", lambda path: 1 / 0)
    code, out, err = run("info", tmp_path / "m.safetensors")
    assert code == 1 and out == "" and "Traceback" not in err
    assert err == "seqdl: internal error: ZeroDivisionError: division by zero (rerun with --debug for details)\n"
    args = ["--debug", "info", tmp_path / "m.safetensors"] if where == "before" else [
        "info", tmp_path / "m.safetensors", "--debug"]
    code, out, err = run(*args)
    assert code == 1 and out == ""
    assert err.startswith("Traceback (most recent call last):") and "1 / 0" in err
    assert err.endswith("seqdl: internal error: ZeroDivisionError: division by zero (rerun with --debug for "
                        "details)\n")


def _commands(group=None, prefix=()) -> list[tuple[tuple[str, ...], object]]:
    group = group or typer.main.get_command(cli.app)
    found = [(prefix, group)]
    for name, command in getattr(group, "commands", {}).items():
        found += _commands(command, (*prefix, name)) if hasattr(command, "commands") else [((*prefix, name), command)]
    return found


def test_help_names_values_without_python_types_and_shows_every_default(run):
    commands = _commands()
    assert {" ".join(name) for name, _ in commands} >= {"", "info", "plot", "quantize", "textgen", "eval text",
                                                       "scan", "train", "train dna", "eval", "eval dna", "segment"}
    for name, command in commands:
        code, out, err = run(*name, "--help")
        assert code == 0 and err == "", name
        assert not re.search(r"<(bool|int|float|str|path|list|Path)\b|\{\w+\}|list\[", out), (name, out)
        assert "--debug" in out and "--help" in out, name
        for param in command.params:
            flag = getattr(param, "is_flag", False) or param.param_type_name == "argument"
            if not (flag or param.required or param.name in ("debug", "help")):
                shown = param.default is not None or isinstance(param.show_default, str)
                assert shown or "\\[default:" in (param.help or ""), (name, param.name)
    _, out, _ = run("textgen", "--help")
    for default in ("[default: gru]", "[default: 512]", "[default: 2]", "[default: 0.002]", "[default: 128]",
                    "[default: <first input's name>.safetensors"):
        assert default in out, default
    assert re.search(r"--steps .*With --resume: N more steps after a finished run", out)


def test_train_and_eval_list_only_the_front_ends_that_exist(run):
    root = typer.main.get_command(cli.app)
    for verb in ("train", "eval"):
        group = root.commands[verb]
        assert not {"text", "dna", "letters"} & set(re.findall(r"\w+", group.help)), group.help
        _, out, _ = run(verb, "--help")
        listed = set(re.findall(r"^│ (\w+) ", out.split("Commands")[1], flags=re.M))
        assert listed == set(group.commands) and listed, (verb, listed)


def test_quantize_keeps_kind_config_step_and_metadata_and_drops_optimizer(run, tmp_path):
    seqdl.manual_seed(0)
    model = seqdl.nn.Sequential(seqdl.nn.Embedding(40, 32), seqdl.nn.Linear(32, 64), seqdl.nn.Linear(64, 40))
    optimizer = seqdl.optim.AdamW(model.parameters())
    source = seqdl.save(tmp_path / "m.ckpt.safetensors", model, optimizer=optimizer, step=12, kind="text",
                        config={"hidden": 64}, metadata={"seqdl.vocab": ["a", "b"]})
    code, out, err = run("quantize", source, "--out", tmp_path / "m8.safetensors", "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["bytes_after"] < record["bytes_before"] / 3
    small = seqdl.load(tmp_path / "m8.safetensors", kind="text")
    assert small.step == 12 and small.config == {"hidden": 64} and small.metadata["seqdl.vocab"] == ["a", "b"]
    assert small.optimizer_state is None
    for name, value in model.state_dict().items():
        step = np.abs(value).max() / 127
        assert np.abs(small.state_dict[name] - value).max() <= step / 2 + 1e-7, name
    code, _, err = run("quantize", source, "--out", tmp_path / "x.safetensors", "--bits", "4", "--group-size", "7")
    assert code == 2 and err == "seqdl: error: --group-size must be even, not 7\n"
    assert not (tmp_path / "x.safetensors").exists()


def test_the_console_command_runs_main(tmp_path):
    """``python -m seqdl.cli`` (and the ``seqdl`` script, the same ``main``) as a separate process."""
    result = subprocess.run([sys.executable, "-m", "seqdl.cli", "info", "--json"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and json.loads(result.stdout)["seqdl_version"] == seqdl.__version__
    result = subprocess.run([sys.executable, "-m", "seqdl.cli", "scan", "--window", "0"], capture_output=True,
                            text=True, timeout=120)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "seqdl: error: --window 0: input should be greater than or equal to 1\n"


def test_the_cli_stays_a_thin_module_per_front_end():
    """Issue 13: the CLI is a package of small modules (none over 250 lines), run by ``seqdl.cli:main``."""
    from pathlib import Path

    package = Path(cli.__file__).parent
    sizes = {path.name: len(path.read_text().splitlines()) for path in package.glob("*.py")}
    assert {"tools.py", "text.py", "dna.py", "vision.py"} <= set(sizes)
    assert max(sizes.values()) <= 250, sizes
    pyproject = (package.parents[1] / "pyproject.toml").read_text()
    assert 'seqdl = "seqdl.cli:main"' in pyproject


def test_conventions_are_in_the_projects_own_docs():
    """The conventions users rely on ship with the code: no pointer to a CONVENTIONS.md a clone does not have."""
    from pathlib import Path

    root = Path(cli.__file__).parents[2]
    conventions = (root / "docs" / "conventions.md").read_text()
    for topic in ("## Exit codes", "## JSON Lines", "## Coordinates", "## Parquet outputs", "seqdl.inputs"):
        assert topic in conventions, topic
    assert "(docs/conventions.md)" in (root / "README.md").read_text()
    for folder in ("seqdl", "pipelines", "vision"):
        for path in (root / folder).rglob("*.py"):
            assert "CONVENTIONS.md" not in path.read_text(), path
