"""Hostile input for build_table.py and select_potential.py (issue 19): each bad input ends in one
`error:` line, exit 1, no traceback and no file written or changed; the scripts run as their own
process through tests/test_hostile.py's forked `run_cli`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_hostile import assert_refused, run_cli

ROOT = Path(__file__).resolve().parent.parent
V03_CHAT = ROOT / "data" / "lm_eval_results" / "lmeval_v0.3" / "Llama-2-7b-chat-hf" / "gpt4all.json"
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def lm_eval_file(path: Path, **changes) -> Path:
    """A real FastEval/lm-eval 0.3 file with some top-level keys replaced."""
    data = json.loads(V03_CHAT.read_text(encoding="utf-8"))
    data.update(changes)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def snapshot(folder: Path) -> dict:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def assert_unchanged(folder: Path, before: dict) -> None:
    assert snapshot(folder) == before, "a file was written or changed"


# --------------------------------------------------------------------------- build_table.py


def test_model_name_that_is_a_dict_is_refused(tmp_path):
    """Without pretrained=, the file's `model_name` names the row: a dict became a row `{'a': 1}`."""
    f = lm_eval_file(tmp_path / "in" / "r.json", config={"model_args": "engine=x"}, model_name={"a": 1})
    before = snapshot(tmp_path)
    code, _, err = run_cli("build_table.py", "--lm-eval", str(f), "--output", str(tmp_path / "t.csv"))
    assert_refused(code, err, "r.json", "model_name", "not a model name")
    assert_unchanged(tmp_path, before)


def test_pretrained_that_is_not_text_is_refused(tmp_path):
    f = lm_eval_file(tmp_path / "in" / "r.json", config={"model_args": {"pretrained": ["a", "b"]}})
    before = snapshot(tmp_path)
    code, _, err = run_cli("build_table.py", "--lm-eval", str(f), "--output", str(tmp_path / "t.csv"))
    assert_refused(code, err, "r.json", "pretrained", "not a model name")
    assert_unchanged(tmp_path, before)


def test_config_that_is_not_an_object_is_refused(tmp_path):
    f = lm_eval_file(tmp_path / "in" / "r.json", config="oops")
    before = snapshot(tmp_path)
    code, _, err = run_cli("build_table.py", "--lm-eval", str(f), "--output", str(tmp_path / "t.csv"))
    assert_refused(code, err, "r.json", "`config` is 'oops'")
    assert_unchanged(tmp_path, before)


@pytest.mark.parametrize("field,value,expected", [
    ("run", "oops", "`run` is 'oops'"),
    ("settings", [1], "`settings` is [1]"),
    ("results", {"arc_easy": {"accuracy": 0.5}}, None),  # a valid summary, for contrast
])
def test_evaluate_summary_with_a_bad_run_block(tmp_path, field, value, expected):
    summary = {"run": {"model": "org/m", "method": "base", "strategy": "none"}, "settings": {"model": "org/m"},
               "results": {"arc_easy": {"accuracy": 0.5, "metric": "accuracy", "n": 4}}, "finished": True}
    summary[field] = value
    folder = tmp_path / "evals" / "m"
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    before = snapshot(tmp_path)
    code, out, err = run_cli("build_table.py", "--evaluate", str(tmp_path / "evals"), "--missing", "keep",
                             "--output", str(tmp_path / "t.csv"))
    if expected is None:
        assert code == 0, err
        assert (tmp_path / "t.csv").read_text().splitlines() == ["Model,arc_easy", "org/m,0.5"]
        return
    assert_refused(code, err, "summary.json", expected)
    assert_unchanged(tmp_path, before)


def test_output_equal_to_the_names_map_is_refused(tmp_path):
    """Every file a run reads is an input: --output was allowed to replace its --model-names CSV."""
    names = tmp_path / "names.csv"
    names.write_text("pool_name,behaviour_table_name\nmeta-llama/Llama-2-7b-chat-hf,llama-2-7b-chat\n", encoding="utf-8")
    before = snapshot(tmp_path)
    code, _, err = run_cli("build_table.py", "--lm-eval", str(V03_CHAT), "--model-names", str(names),
                           "--output", str(names))
    assert_refused(code, err, f"--output {names} would overwrite the input")
    assert_unchanged(tmp_path, before)


def test_provenance_inside_an_input_folder_is_refused(tmp_path):
    """The provenance JSON beside an output inside the --lm-eval folder would be read by the next run."""
    folder = tmp_path / "results"
    lm_eval_file(folder / "a.json")
    before = snapshot(tmp_path)
    code, _, err = run_cli("build_table.py", "--lm-eval", str(folder), "--output", str(folder / "t.csv"))
    assert_refused(code, err, "would overwrite the input", str(folder))
    assert_unchanged(tmp_path, before)


def test_output_that_is_a_folder_is_refused(tmp_path):
    (tmp_path / "t.csv").mkdir()
    before = snapshot(tmp_path)
    code, _, err = run_cli("build_table.py", "--lm-eval", str(V03_CHAT), "--output", str(tmp_path / "t.csv"))
    assert_refused(code, err, "t.csv is a folder")
    assert_unchanged(tmp_path, before)


def test_provenance_path_that_is_a_folder_leaves_no_table(tmp_path):
    """Outputs appear all or none: the CSV was written and the provenance rename then failed."""
    (tmp_path / "t.provenance.json").mkdir()
    before = snapshot(tmp_path)
    code, _, err = run_cli("build_table.py", "--lm-eval", str(V03_CHAT), "--output", str(tmp_path / "t.csv"))
    assert_refused(code, err, "t.provenance.json is a folder")
    assert not (tmp_path / "t.csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.provenance.json"]
    assert_unchanged(tmp_path, before)


def test_ctrl_c_in_build_table_is_one_line_and_exit_130(monkeypatch):
    import argparse

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", interrupted)
    code, _, err = run_cli("build_table.py")
    assert code == 130 and "interrupted: build_table.py stopped by Ctrl-C" in err, (code, err)


# --------------------------------------------------------------------------- select_potential.py


def _records(n: int = 4) -> list[dict]:
    out = []
    for i in range(n):
        prompt = f"Question {i}?"
        out.append({"prompt": prompt, "prompt_id": f"id{i}", "most_similar_pair": ["gpt-4", "alpaca-7b"],
                    "chosen": [{"content": prompt, "role": "user"}, {"content": f"Good answer {i}.", "role": "assistant"}],
                    "rejected": [{"content": prompt, "role": "user"}, {"content": f"bad {i}", "role": "assistant"}],
                    "mb_sup_chosen": 0.9 - 0.1 * i, "mb_sup_rejected": 0.2})
    return out


def _write(path: Path, records) -> Path:
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def _potential(tmp_path: Path, data: Path, *extra: str, output: str = "p.json") -> tuple[int, str, str]:
    return run_cli("select_potential.py", "--data", str(data), "--model", str(tmp_path / "no-model"),
                   "--output", str(tmp_path / output), *extra, env=OFFLINE)


def test_potential_record_that_is_not_an_object_is_refused(tmp_path):
    data = _write(tmp_path / "d.json", [*_records(2), 5, *_records(1)])
    before = snapshot(tmp_path)
    code, _, err = _potential(tmp_path, data)
    assert_refused(code, err, "d.json:1: list item 3 expected to be a JSON object, got a number (5)")
    assert_unchanged(tmp_path, before)


def test_potential_lone_surrogate_is_refused_before_the_model_loads(tmp_path):
    records = _records(3)
    records[1]["rejected"][1]["content"] = "broken \ud800 text"
    data = tmp_path / "d.json"
    data.write_text(json.dumps(records), encoding="utf-8")  # ensure_ascii: the file holds the escape \ud800
    before = snapshot(tmp_path)
    code, _, err = _potential(tmp_path, data)
    assert_refused(code, err, "d.json:1: list item 2: ", "surrogate")
    assert_unchanged(tmp_path, before)


def test_potential_extra_field_of_mixed_types_is_refused_for_parquet(tmp_path):
    records = _records(3)
    records[0]["note"], records[1]["note"], records[2]["note"] = 1, "two", None
    data = _write(tmp_path / "d.json", records)
    before = snapshot(tmp_path)
    code, _, err = _potential(tmp_path, data, output="p.parquet")
    assert_refused(code, err, "field 'note'", "int", "str", ".json or .jsonl")
    assert_unchanged(tmp_path, before)


@pytest.mark.parametrize("flags,expected", [
    (["--dtype", "float8"], "--dtype must be one of auto, float32, bfloat16, float16, not 'float8'"),
    (["--device", "banana"], "--device 'banana'"),
    (["--device", "cuda:3"], "--device cuda:3"),
    (["--lambda", "1e308"], "--lambda 1e+308"),
])
def test_potential_flags_are_checked_before_the_model_loads(tmp_path, flags, expected):
    """--model names a folder that does not exist: a refusal that mentions it came too late."""
    data = _write(tmp_path / "d.json", _records(8))
    before = snapshot(tmp_path)
    code, _, err = _potential(tmp_path, data, *flags)
    line = assert_refused(code, err, expected)
    assert "no-model" not in line
    assert_unchanged(tmp_path, before)


def test_potential_mixed_extra_field_passes_through_json_output(tiny, tmp_path):
    """For .json the extra field is written as it was read (Arrow typed it, and failed, for every format)."""
    folder = tiny  # tests/conftest.py: a tiny random model folder
    records = _records(4)
    records[0]["note"], records[1]["note"] = 1, "two"
    data = _write(tmp_path / "d.json", records)
    # a fresh interpreter, not run_cli's fork: a fork of a process whose torch thread pools already ran
    # (earlier tests train in this process) can hang in its first parallel op
    import os
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "select_potential.py", "--data", str(data), "--model", str(folder),
                           "--keep", "1", "--max-length", "64", "--output", str(tmp_path / "p.json")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, **OFFLINE})
    assert done.returncode == 0, done.stderr[-3000:]
    kept = json.loads((tmp_path / "p.json").read_text(encoding="utf-8"))
    assert [r.get("note") for r in kept] == [1, "two", None, None]
    meta = json.loads((tmp_path / "p.json.meta.json").read_text(encoding="utf-8"))
    assert meta["counts"]["read"] == meta["counts"]["scored"] == meta["counts"]["kept"] == 4


# --------------------------------------------------------------------------- a Python without the packages

# what the system Python of a fresh machine lacks (the README's `python …` before `make setup`)
ABSENT = ("pandas", "pyarrow", "datasets", "torch", "tqdm", "transformers", "trl")
# every top-level script whose third-party imports sit inside main(), with flags that get that far;
# evaluate.py and train_grid.py still import theirs at module top (reported to their owners)
WITHOUT_PACKAGES = [
    ("binarize_score.py", ["--output", "{tmp}/x.json"]),
    ("binarize_similarity.py", ["--output", "{tmp}/x.json"]),
    ("binarize_combined.py", ["--output", "{tmp}/x.json"]),
    ("binarize_baseline.py", ["--output", "{tmp}/x.json"]),
    ("build_table.py", ["--lm-eval", str(V03_CHAT), "--output", "{tmp}/t.csv"]),
    ("select_potential.py", ["--data", "{tmp}/d.json", "--model", "m", "--output", "{tmp}/p.json"]),
    ("analyze.py", ["cost", "--output-dir", "{tmp}/analysis"]),
    ("make_ultrafeedback.py", ["--rows", "3", "--output", "{tmp}/uf.jsonl"]),
    ("train_sft.py", ["--data", "{tmp}/d.json", "--model", "m", "--output-dir", "{tmp}/run"]),
    ("train_dpo.py", ["--data", "{tmp}/d.json", "--model", "m", "--output-dir", "{tmp}/run"]),
]


@pytest.mark.parametrize("script,args", WITHOUT_PACKAGES, ids=[s for s, _ in WITHOUT_PACKAGES])
def test_a_python_without_the_packages_gets_one_line(script, args, tmp_path):
    """A fresh interpreter in which the packages cannot be imported, as the system Python of a new
    machine: one line naming the module and the set-up command, exit 1, nothing written."""
    import subprocess
    import sys

    _write(tmp_path / "d.json", _records(2))
    before = snapshot(tmp_path)
    argv = [a.format(tmp=tmp_path) for a in args]
    block = "; ".join(f"sys.modules[{m!r}] = None" for m in ABSENT)
    code = (f"import runpy, sys; {block}; sys.argv = {[script, *argv]!r}; "
            f"runpy.run_path({script!r}, run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, **OFFLINE})
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1, done.stderr
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("error: this Python") and "has no module" in lines[0] and "make setup" in lines[0]
    assert ".venv/bin/python" in lines[0]
    assert snapshot(tmp_path) == before


def test_reproduce_dry_run_needs_no_third_party_package_but_yaml():
    """reproduce.py --dry-run only plans (its steps are other scripts, each guarded itself): it runs
    on a Python without pandas, pyarrow, datasets, torch, tqdm, transformers and trl."""
    import subprocess
    import sys

    block = "; ".join(f"sys.modules[{m!r}] = None" for m in ABSENT)
    code = f"import runpy, sys; {block}; sys.argv = ['reproduce.py', '--dry-run']; runpy.run_path('reproduce.py', run_name='__main__')"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, **OFFLINE})
    assert done.returncode == 0, done.stderr
    assert "train_dpo.py" in done.stdout and "Traceback" not in done.stderr
