"""Hostile input to the training side, second sweep (issue 19): weights that cannot divide, text that
is not UTF-8, an output folder that cannot be written, recipes and summaries that are not what they
claim. Each case runs a script and must end in one `error: ...` line naming the file (and row, key
or column), a non-zero exit, and nothing written; or, where the issue asks for a decision, in the
documented one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tiny import make_tiny_model_dir
from tests.tiny import preference_record as pref

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
SMALL = ["--max-steps", "1", "--batch-size", "2", "--grad-accum", "1", "--max-length", "32", "--warmup-steps", "0"]


def run(script: str, *args: str, cwd: Path = ROOT, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / script), *args], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def one_error_line(done: subprocess.CompletedProcess) -> str:
    """The refusal's message: exit 1 and `error: ...` as the only stderr line that is not a log
    record or a progress bar (the run's INFO/WARNING lines and tqdm bars are allowed)."""
    lines = [line for line in done.stderr.splitlines()
             if line.strip() and not line.startswith(("INFO ", "WARNING ")) and "%|" not in line]  # log records, progress bars
    assert done.returncode == 1, done.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr[-3000:]
    return lines[0]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A folder with a tiny model."""
    root = tmp_path_factory.mktemp("world")
    make_tiny_model_dir(root / "tiny")
    return root


def write(path: Path, rows: list[dict]) -> str:
    path.write_text(json.dumps(rows), encoding="utf-8")
    return str(path)


# --------------------------------------------------------------------------- weights (issue 19 §2)


@pytest.mark.parametrize("weight", [0.0, 1e-320], ids=["zero", "denormal"])
def test_weights_that_cannot_divide_are_refused_at_load(world, tmp_path, weight):
    """Today: loss 0.0 at every step, the (untrained) model saved, exit 0."""
    data = write(tmp_path / "zero.json", [pref(i, w=weight) for i in range(4)])
    out = tmp_path / "run"
    done = run("train_dpo.py", "--data", data, "--model", str(world / "tiny"), "--output-dir", str(out),
               "--weight-column", "w", *SMALL)
    msg = one_error_line(done)
    assert "zero.json" in msg and "'w'" in msg and "sum" in msg, msg
    assert not out.exists()


# --------------------------------------------------------------------------- text (issue 19 §4)


def test_lone_surrogate_in_a_response_names_the_file_and_row(world, tmp_path):
    """Today: UnicodeEncodeError traceback (pyarrow cannot encode the string)."""
    rows = [pref(i) for i in range(4)]
    rows[2]["chosen"][1]["content"] = "Good answer \ud800 yes."
    data = tmp_path / "surrogate.json"
    data.write_text(json.dumps(rows), encoding="utf-8")  # json.dumps writes the escape \ud800, valid JSON
    out = tmp_path / "run"
    done = run("train_sft.py", "--data", str(data), "--model", str(world / "tiny"), "--output-dir", str(out), *SMALL)
    msg = one_error_line(done)
    assert "surrogate.json:1: list item 3: chosen[1].content holds a lone surrogate" in msg, msg
    assert not out.exists()


# --------------------------------------------------------------------------- output folder (issue 19 §4)


def _read_only(folder: Path) -> bool:
    """Make `folder` refuse new entries, even to root (as a read-only mount would): chmod for a user,
    the immutable attribute for root, whom mode bits do not stop. False where neither works."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return True
    return subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0


def test_read_only_output_dir_is_refused_before_the_model_loads(world, tmp_path):
    """Today: the data and the model load and the run trains, then saving fails with a traceback."""
    parent = tmp_path / "ro"
    parent.mkdir()
    data = write(tmp_path / "toy.json", [pref(i) for i in range(4)])
    if not _read_only(parent):
        pytest.skip("cannot make a read-only folder here (no chattr as root)")
    try:
        out = parent / "run"
        done = run("train_sft.py", "--data", data, "--model", str(world / "tiny"), "--output-dir", str(out), *SMALL)
        msg = one_error_line(done)
        assert "--output-dir" in msg and "not writable" in msg and str(parent) in msg, msg
        assert "bf16 off" not in done.stderr  # refused before the run's precision is even decided
        assert not out.exists()
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(parent)], check=True)
        parent.chmod(0o755)


# --------------------------------------------------------------------------- recipes (issue 19 §4)


def grid_folder(tmp_path: Path, recipe_text: str | bytes) -> Path:
    """A working folder holding recipes/data.yaml, one accelerate config and one recipe."""
    (tmp_path / "recipes" / "m").mkdir(parents=True)
    (tmp_path / "recipes" / "accelerate").mkdir()
    shutil.copy(ROOT / "recipes" / "accelerate" / "ddp.yaml", tmp_path / "recipes" / "accelerate" / "ddp.yaml")
    (tmp_path / "recipes" / "data.yaml").write_text("sup:\n  script: binarize_score.py\n  output: out/data/sup.json\n")
    path = tmp_path / "recipes" / "m" / "dpo-sup.yaml"
    if isinstance(recipe_text, bytes):
        path.write_bytes(recipe_text)
    else:
        path.write_text(recipe_text)
    return tmp_path


GOOD_RECIPE = ("script: train_dpo.py\naccelerate_config: recipes/accelerate/ddp.yaml\ndata: out/data/sup.json\n"
               "args:\n  model: org/model\n  output_dir: runs/m/dpo-sup\n  batch_size: 6\n")


@pytest.mark.parametrize("recipe, needle", [
    (GOOD_RECIPE.replace("org/model", "org/mod\xe9l").encode("latin-1"), "not UTF-8"),
    ("!!python/object:os.system {}\n", "python/object"),
    (GOOD_RECIPE + "  bach_size: 6\n", "args.bach_size"),
    (GOOD_RECIPE.replace("batch_size: 6", "batch_size: six"), "args.batch_size"),
    (GOOD_RECIPE.replace("batch_size: 6", "lr: .nan"), "args.lr"),
    (GOOD_RECIPE.replace("recipes/accelerate/ddp.yaml", "recipes/accelerate/dpp.yaml"), "accelerate_config"),
], ids=["non-utf8", "python-tag", "unknown-key", "bad-value", "nan-value", "missing-accelerate-config"])
def test_bad_recipe_is_one_line_naming_the_recipe_in_a_dry_run(tmp_path, recipe, needle):
    """Today: a UnicodeDecodeError traceback, a 4-line YAML error, argparse's usage text without the
    recipe's name, and (missing config) a dry run that passes and a real run that dies in accelerate."""
    cwd = grid_folder(tmp_path, recipe)
    done = run("train_grid.py", "--dry-run", "--data", "uf.jsonl", cwd=cwd)
    msg = one_error_line(done)
    assert "recipes/m/dpo-sup.yaml" in msg and needle in msg, msg
    assert "usage:" not in done.stderr and "accelerate launch" not in done.stdout


@pytest.mark.parametrize("flag", ["--data", "--output-dir", "--model"])
def test_grid_refuses_pass_through_flags_that_replace_a_recipes_run(tmp_path, flag):
    """Today `-- --data other.json` silently trains every recipe on other.json (argparse keeps the last)."""
    cwd = grid_folder(tmp_path, GOOD_RECIPE)
    done = run("train_grid.py", "--dry-run", "--data", "uf.jsonl", "--", flag, "x", cwd=cwd)
    msg = one_error_line(done)
    assert flag in msg and "recipe" in msg, msg


def test_grid_says_which_recipe_values_pass_through_flags_override(tmp_path):
    cwd = grid_folder(tmp_path, GOOD_RECIPE)
    done = run("train_grid.py", "--dry-run", "--data", "uf.jsonl", "--", "--batch-size", "2", "--max-steps", "5",
               cwd=cwd)
    assert done.returncode == 0, done.stderr
    note = [line for line in done.stdout.splitlines() if "override" in line]
    assert len(note) == 1 and "--batch-size 2" in note[0] and "6" in note[0] and "--max-steps" not in note[0], done.stdout


# --------------------------------------------------------------------------- reproduce.py (issue 19 §2, §4)


def test_reproduce_recipe_named_without_a_dash(tmp_path):
    """Today: ValueError (not enough values to unpack) from `name.split('-')`."""
    (tmp_path / "recipes" / "m").mkdir(parents=True)
    text = (ROOT / "recipes" / "qwen2.5-3b" / "dpo-sup.yaml").read_text()
    (tmp_path / "recipes" / "m" / "weighted.yaml").write_text(text)
    (tmp_path / "recipes" / "data.yaml").symlink_to(ROOT / "recipes" / "data.yaml")
    (tmp_path / "recipes" / "accelerate").symlink_to(ROOT / "recipes" / "accelerate")
    done = run("reproduce.py", "--dry-run", "--data", "uf", "--output-dir", str(tmp_path / "o"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    evals = [line for line in done.stdout.splitlines() if line.startswith("python evaluate.py --model")]
    assert len(evals) == 1 and "--run-method dpo" in evals[0] and f"{tmp_path / 'o'}/evals/m/weighted" in evals[0]


def _reproduce_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("reproduce_script", ROOT / "reproduce.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("content", ['{"finished": "no"}', '{"finished": 1}', '[{"finished": true}]', '"finished"'],
                         ids=["string-no", "number", "list", "string"])
def test_reproduce_counts_an_evaluation_done_only_when_finished_is_true(tmp_path, content, capsys):
    """Today: "no" and 1 read as finished (truthy) and the evaluation is skipped; a list is a traceback."""
    mod = _reproduce_module()
    summary = tmp_path / "summary.json"
    summary.write_text(content)
    assert mod.is_done(mod.Step("evaluate", ["true"], str(summary))) is False
    assert "summary.json" in capsys.readouterr().err


def test_every_prompt_longer_than_max_length_is_one_line(world, tmp_path):
    """trl's DPOTrainer drops pairs whose prompt alone fills --max-length; when that is every pair,
    today's run died in torch's sampler (ValueError: num_samples=0) after the model loaded."""
    rows = [pref(i) for i in range(4)]
    for row in rows:
        long = row["prompt"] + " and more words" * 30
        row["prompt"] = row["chosen"][0]["content"] = row["rejected"][0]["content"] = long
    data = write(tmp_path / "long.json", rows)
    out = tmp_path / "run"
    done = run("train_dpo.py", "--data", data, "--model", str(world / "tiny"), "--output-dir", str(out), *SMALL)
    msg = one_error_line(done)
    assert "--max-length 32" in msg and "4 pairs" in msg, msg
    assert not out.exists()


@pytest.mark.parametrize("case", ["model-folder", "data-inside"])
def test_output_dir_that_holds_an_input_is_refused(tmp_path, case):
    """Today: `--output-dir` = `--model` trains and then writes the new weights over the model it read
    (exit 0); a folder holding --data gets the run's files beside (or, by name, over) the data."""
    model = make_tiny_model_dir(tmp_path / "model")
    before = (model / "model.safetensors").read_bytes()
    out = model if case == "model-folder" else tmp_path / "run"
    out.mkdir(exist_ok=True)
    data = write(out / "toy.json", [pref(i) for i in range(4)]) if case == "data-inside" else write(
        tmp_path / "toy.json", [pref(i) for i in range(4)])
    done = run("train_sft.py", "--data", data, "--model", str(model), "--output-dir", str(out), *SMALL)
    msg = one_error_line(done)
    assert f"--output-dir {out}" in msg and ("--model" if case == "model-folder" else "--data") in msg, msg
    assert (model / "model.safetensors").read_bytes() == before
    assert not (out / "settings.json").exists() and not (out / "metrics.json").exists()
