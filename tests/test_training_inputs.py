"""Hostile input to the training side (issue 14): every bad setting or file is one `error: ...` line,
before any work (no output folder, no model loaded); a run whose loss turns non-finite stops and
leaves no "done" marker; a tiny run is quiet (issue 15: no deprecation or pin_memory warnings)."""

import importlib
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from tests.tiny import preference_record as pref
from zebra import cli
from zebra.run_folder import run_is_done
from zebra.training_settings import TrainSettings, effective_warmup_steps

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "toy.json"
    path.write_text(json.dumps([pref(i) for i in range(8)]))
    return str(path)


def _run_script(script: str, argv: list[str]) -> str:
    """The script's own parser and run, in process; returns the `error: ...` message it exits with."""
    module = importlib.import_module(script.removesuffix(".py"))
    settings = TrainSettings(method="dpo" if script == "train_dpo.py" else "sft", **vars(module.parser().parse_args(argv)))
    with pytest.raises(SystemExit) as exit_info:
        cli.run_training(module.train, settings)
    return str(exit_info.value.code)


SMALL = ["--max-steps", "2", "--batch-size", "2", "--grad-accum", "1", "--max-length", "32", "--warmup-steps", "0"]

# (script, extra flags, the message must contain)
BAD_SETTINGS = [
    ("train_dpo.py", ["--beta", "nan"], "--beta nan"),
    ("train_dpo.py", ["--beta", "inf"], "--beta inf"),
    ("train_dpo.py", ["--beta=-0.1"], "--beta -0.1"),
    ("train_dpo.py", ["--lr", "nan"], "--lr nan"),
    ("train_sft.py", ["--lr", "inf"], "--lr inf"),
    ("train_sft.py", ["--lr=-1e-5"], "--lr -1e-05"),
    ("train_dpo.py", ["--epochs", "nan", "--max-steps=-1"], "--epochs nan"),
    ("train_dpo.py", ["--epochs", "inf"], "--epochs inf"),  # even with --max-steps set: it is saved as a setting
    ("train_sft.py", ["--batch-size", "0"], "--batch-size 0"),
    ("train_sft.py", ["--grad-accum=-2"], "--grad-accum -2"),
    ("train_dpo.py", ["--warmup-steps=-1"], "--warmup-steps -1"),
    ("train_dpo.py", ["--seed=-1"], "--seed -1"),
    ("train_dpo.py", ["--logging-steps", "0"], "--logging-steps 0"),
    ("train_dpo.py", ["--max-steps=-5"], "--max-steps -5"),
    ("train_dpo.py", ["--max-length", "0"], "--max-length 0"),
    ("train_sft.py", ["--lora", "--lora-r", "0"], "--lora-r 0"),
]


@pytest.mark.parametrize("script, flags, needle", BAD_SETTINGS, ids=[f"{s} {' '.join(f)}" for s, f, _ in BAD_SETTINGS])
def test_bad_setting_is_one_line_before_any_work(script, flags, needle, tmp_path):
    # the model and data do not even exist: the settings are refused before either is looked at
    out = tmp_path / "run"
    msg = _run_script(script, ["--data", str(tmp_path / "none.json"), "--model", str(tmp_path / "no-model"),
                               "--output-dir", str(out), *SMALL, *flags])
    assert msg.startswith("error: ") and "\n" not in msg and needle in msg, msg
    assert not out.exists()


def _bad_inputs(tmp_path, tiny, toy):
    """(name, argv without the common flags, the message must contain) for files that are not right."""
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.json"
    truncated.write_text(Path(toy).read_text()[:150])
    truncated_jsonl = tmp_path / "truncated.jsonl"
    truncated_jsonl.write_text(json.dumps(pref(0)) + "\n" + json.dumps(pref(1))[:40] + "\n")
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = tmp_path / "full.parquet"
    pq.write_table(pa.Table.from_pylist(json.loads(Path(toy).read_text())), parquet)
    truncated_parquet = tmp_path / "truncated.parquet"
    truncated_parquet.write_bytes(parquet.read_bytes()[: parquet.stat().st_size // 2])
    empty_folder = tmp_path / "empty-model"
    empty_folder.mkdir()
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    return [
        ("0-byte data", ["--data", str(empty), "--model", tiny], "empty.json: empty file (0 bytes)"),
        ("truncated json", ["--data", str(truncated), "--model", tiny], "truncated.json:1: the file ends inside a JSON value"),
        ("truncated jsonl", ["--data", str(truncated_jsonl), "--model", tiny], "truncated.jsonl:2: the line ends inside a JSON value"),
        ("truncated parquet", ["--data", str(truncated_parquet), "--model", tiny], "truncated.parquet: truncated Parquet file"),
        ("missing data", ["--data", str(tmp_path / "none.json"), "--model", tiny], "none.json: no such records file"),
        ("missing model path", ["--data", toy, "--model", str(tmp_path / "no-model")], "no-model: no such folder"),
        ("empty model folder", ["--data", toy, "--model", str(empty_folder)], "empty-model has no config.json"),
        ("model is a file", ["--data", toy, "--model", str(a_file)], "a-file is a file"),
        ("hub id offline", ["--data", toy, "--model", "zebra-no-such-org/no-such-model"],
         "zebra-no-such-org/no-such-model: no such folder, and not in the local Hugging Face cache (HF_HUB_OFFLINE=1)"),
        ("output-dir is a file", ["--data", toy, "--model", tiny, "--output-dir", str(a_file)], "a-file is a file"),
    ]


def test_bad_files_are_one_line_before_the_model_loads(tmp_path, tiny, toy, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # what HF_HUB_OFFLINE=1 sets at import
    for name, argv, needle in _bad_inputs(tmp_path, tiny, toy):
        out = tmp_path / f"run-{name.replace(' ', '-')}"
        if "--output-dir" not in argv:
            argv = [*argv, "--output-dir", str(out)]
        msg = _run_script("train_dpo.py", [*argv, *SMALL])
        assert msg.startswith("error: ") and "\n" not in msg and needle in msg, (name, msg)
        assert not out.exists(), name


def test_cli_refuses_nan_beta_with_one_line_and_exit_1(tmp_path, toy):
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "train_dpo.py", "--data", toy, "--model", "m", "--output-dir", str(out),
                           "--beta", "nan"], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().splitlines() == ["error: --beta nan: must be a finite number > 0"]
    assert not out.exists()


def test_non_finite_loss_stops_the_run_and_leaves_no_done_marker(tiny, toy, tmp_path):
    # lr 1e30 is finite, so it passes the checks, and blows the weights up to inf within a step
    out = tmp_path / "run"
    msg = _run_script("train_dpo.py", ["--data", toy, "--model", tiny, "--output-dir", str(out), *SMALL,
                                       "--max-steps", "4", "--lr", "1e30"])
    assert msg.startswith("error: ") and "\n" not in msg and "non-finite" in msg and "--lr" in msg, msg
    assert not (out / "metrics.json").exists() and not run_is_done(out)
    assert not out.exists()  # the folder trl's Trainer made at start is gone with the failed run


def test_run_is_done_needs_finite_metrics(tmp_path):
    assert not run_is_done(tmp_path)
    (tmp_path / "metrics.json").write_text('{"train_loss": NaN, "final_loss": 0.5, "steps": 2}')
    assert not run_is_done(tmp_path)  # written by an older version that let NaN runs finish
    (tmp_path / "metrics.json").write_text('{"train_loss": 0.6, "final_loss": 0.5, "steps": 2')  # truncated
    assert not run_is_done(tmp_path)
    (tmp_path / "metrics.json").write_text('{"train_loss": 0.6, "final_loss": 0.5, "steps": 2}')
    assert run_is_done(tmp_path)


def test_grid_and_reproduce_redo_a_run_whose_metrics_are_nan(tmp_path):
    """train_grid.py skips finished runs, reproduce.py skips finished steps: a NaN run is neither."""
    runs = tmp_path / "runs" / "qwen2.5-3b"
    (runs / "dpo-sup").mkdir(parents=True)
    (runs / "dpo-sup" / "metrics.json").write_text('{"train_loss": NaN, "final_loss": NaN, "steps": 2}')
    (runs / "dpo-sim").mkdir(parents=True)
    (runs / "dpo-sim" / "metrics.json").write_text('{"train_loss": 0.6, "final_loss": 0.5, "steps": 2}')
    recipes = tmp_path / "recipes" / "qwen2.5-3b"
    recipes.mkdir(parents=True)
    for strategy in ("sup", "sim"):
        text = (ROOT / "recipes/qwen2.5-3b" / f"dpo-{strategy}.yaml").read_text()
        (recipes / f"dpo-{strategy}.yaml").write_text(text.replace("runs/", f"{tmp_path}/runs/"))
    (tmp_path / "recipes" / "data.yaml").symlink_to(ROOT / "recipes/data.yaml")
    (tmp_path / "recipes" / "accelerate").symlink_to(ROOT / "recipes/accelerate")  # the recipes' configs
    (tmp_path / "out" / "data").mkdir(parents=True)
    for name in ("sup", "sim"):
        (tmp_path / "out" / "data" / f"{name}.json").write_text("[]")
    done = subprocess.run([sys.executable, str(ROOT / "train_grid.py"), "--dry-run", "--recipes", "recipes/*/*.yaml"],
                          cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    launches = [line for line in done.stdout.splitlines() if line.startswith("accelerate launch")]
    assert len(launches) == 1 and "dpo-sup" in launches[0] and "1 already done" in done.stdout

    spec = importlib.util.spec_from_file_location("reproduce_script", ROOT / "reproduce.py")
    reproduce = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reproduce)
    assert not reproduce.is_done(reproduce.Step("train", ["true"], str(runs / "dpo-sup" / "metrics.json")))
    assert reproduce.is_done(reproduce.Step("train", ["true"], str(runs / "dpo-sim" / "metrics.json")))


# ---------------------------------------------------------------------------------------------
# the other scripts' numeric flags


@pytest.mark.parametrize("argv, needle", [
    (["--keep", "nan"], "--keep must be a finite number, not nan"),
    (["--lambda", "nan"], "--lambda must be a finite number, not nan"),
    (["--lambda", "inf"], "--lambda must be a finite number, not inf"), (["--lambda=-1"], "--lambda must be >= 0, not -1"),
    (["--batch-size", "0"], "--batch-size must be >= 1, not 0"), (["--limit", "0"], "--limit must be >= 1, not 0"),
    (["--max-length", "1"], "--max-length must be >= 2, not 1"),
])
def test_select_potential_refuses_bad_numbers_before_the_model_loads(argv, needle, tmp_path, toy):
    out = tmp_path / "pot.json"
    done = subprocess.run([sys.executable, "select_potential.py", "--data", toy, "--model", str(tmp_path / "no-model"),
                           "--output", str(out), *argv], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith("error: ") and needle in done.stderr, done.stderr
    assert not out.exists()


@pytest.mark.parametrize("script, argv, needle", [
    ("train_grid.py", ["--num-processes", "0"], "--num-processes 0"),
    ("train_grid.py", ["--", "--lr", "nan"], "--lr nan"),  # a bad pass-through flag fails once, not 32 times
    ("reproduce.py", ["--sample", "0"], "--sample 0"),
    ("reproduce.py", ["--seed", "-1"], "--seed -1"),
    ("reproduce.py", ["--smoke", "--smoke-steps", "0"], "--smoke-steps 0"),
])
def test_grid_scripts_refuse_bad_numbers(script, argv, needle, tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / script), "--dry-run", *argv], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stderr.strip().splitlines()[-1:] == [done.stderr.strip()], done.stderr
    assert done.stderr.startswith("error: ") and needle in done.stderr, done.stderr
    assert "accelerate launch" not in done.stdout


# ---------------------------------------------------------------------------------------------
# warm-up scaled to short runs (issue 15), quiet runs


def test_warmup_is_capped_at_a_tenth_of_max_steps():
    s = TrainSettings(method="dpo", data="d", model="m", output_dir="o", warmup_steps=500)
    assert effective_warmup_steps(s) == 500  # --epochs run: the paper's 500
    s.max_steps = 3
    assert effective_warmup_steps(s) == 0  # 500 warm-up steps would keep a 3-step run at lr ~0
    s.max_steps = 40
    assert effective_warmup_steps(s) == 4
    s.max_steps, s.warmup_steps = 10_000, 500
    assert effective_warmup_steps(s) == 500


def test_tiny_run_learns_at_the_full_rate_and_is_quiet(tiny, toy, tmp_path):
    """No transformers FutureWarning (gradient_checkpointing → activation_checkpointing) and no
    torch pin_memory UserWarning; with --max-steps 3 the run starts at the full learning rate."""
    from train_dpo import train

    s = TrainSettings(method="dpo", data=toy, model=tiny, output_dir=str(tmp_path / "run"), max_steps=3,
                      batch_size=2, grad_accum=1, lr=1e-2, warmup_steps=500, max_length=32, bf16=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, metrics = train(s)
    noisy = [f"{w.category.__name__}: {w.message}" for w in caught
             if issubclass(w.category, (FutureWarning, DeprecationWarning)) or "pin_memory" in str(w.message)]
    assert noisy == []
    history = json.loads((tmp_path / "run" / "log_history.json").read_text())
    assert [h["learning_rate"] for h in history if "learning_rate" in h][0] == pytest.approx(1e-2)
    assert json.loads((tmp_path / "run" / "settings.json").read_text())["warmup_steps_used"] == 0
    assert metrics["steps"] == 3


def test_help_shows_every_default():
    for script in ("train_dpo.py", "train_sft.py"):
        text = importlib.import_module(script.removesuffix(".py")).parser().format_help()
        for flag, default in (("--lr", "5e-05"), ("--epochs", "1"), ("--grad-accum", "4"), ("--warmup-steps", "500"),
                              ("--seed", "42"), ("--logging-steps", "1"), ("--lora-r", "16"), ("--lora-alpha", "32")):
            entry = text.split("options:")[1].split(f"\n  {flag} ", 1)[1].split("\n  -", 1)[0]
            assert f"(default: {default}" in " ".join(entry.split()), (script, flag, entry)
        assert "zero3.yaml" not in text.split("per-example")[0]  # the paper's run: ddp.yaml, as README and recipes
