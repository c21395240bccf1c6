"""evaluate.py's share of issue 19: every flag is checked before the model loads (one `error:` line
naming it), an output never lands on a file the run reads, a read-only output folder is refused
up front, and a summary whose `run` is not an object is named, not a traceback."""

import importlib.util
import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "data" / "eval"


def _script():
    spec = importlib.util.spec_from_file_location("evaluate_script", ROOT / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _error(monkeypatch, capsys, *argv) -> str:
    monkeypatch.setattr("sys.argv", ["evaluate.py", *argv])
    with pytest.raises(SystemExit) as exc:
        _script().main()
    message = str(exc.value.code)
    assert message.startswith("error: ") and "\n" not in message, message
    assert "Traceback" not in capsys.readouterr().err
    return message


@pytest.mark.parametrize("flags, expected", [
    (["--batch-size", "0"], "--batch-size must be >= 1, not 0"),
    (["--max-new-tokens", "-5"], "--max-new-tokens must be >= 1, not -5"),
    (["--ifeval-max-new-tokens", "0"], "--ifeval-max-new-tokens must be >= 1, not 0"),
    (["--dtype", "float8"], "--dtype must be one of auto, bfloat16, float16, float32, not 'float8'"),
    (["--seed", "-5"], "--seed must be in [0, 4294967295], not -5"),
    (["--sample", "0"], "--sample must be >= 1, not 0"),
    (["--threads", "-1"], "--threads must be >= 0, not -1"),
    (["--tensor-parallel-size", "0", "--backend", "vllm"], "--tensor-parallel-size must be >= 1, not 0"),
    (["--data-parallel-size", "2"], "--tensor-parallel-size and --data-parallel-size need --backend vllm"),
])
def test_bad_flags_are_refused_before_the_model_loads(flags, expected, monkeypatch, capsys, tmp_path):
    # a model that does not exist: had the flags been checked after loading, the error would name it
    msg = _error(monkeypatch, capsys, "--model", str(tmp_path / "no-model"), "--eval-dir", str(FIXTURES),
                 "--output-dir", str(tmp_path / "out"), *flags)
    assert expected in msg
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def _unwritable(tmp_path: Path) -> Path:
    """A folder no file can be created in: a read-only one for a normal user; root ignores
    permission bits, so for root a folder under /sys (mkdir there fails with EPERM)."""
    if os.geteuid() != 0:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
        return folder / "out"
    return Path("/sys/zebra-evaluate-test")


def test_read_only_output_folder_is_refused_before_the_model_loads(monkeypatch, capsys, tmp_path):
    out = _unwritable(tmp_path)
    msg = _error(monkeypatch, capsys, "--model", str(tmp_path / "no-model"), "--eval-dir", str(FIXTURES),
                 "--output-dir", str(out))
    assert f"--output-dir {out} is not writable" in msg


def _two_runs(root: Path) -> tuple[Path, Path]:
    runs = []
    for name, scores in (("a", [1, 0, 1]), ("b", [1, 1, 1])):
        folder = root / name
        folder.mkdir(parents=True)
        (folder / "arc_easy.jsonl").write_text("".join(json.dumps({"id": str(i), "score": s}) + "\n" for i, s in enumerate(scores)))
        summary = {"run": {"model": "m", "method": "dpo", "strategy": "baseline" if name == "a" else "sup"},
                   "results": {"arc_easy": {"n": 3, "accuracy": sum(scores) / 3}}, "finished": True}
        (folder / "summary.json").write_text(json.dumps(summary))
        runs.append(folder)
    return runs[0], runs[1]


@pytest.mark.parametrize("target", ["b/summary.json", "b/arc_easy.jsonl", "a/new.json", "b"])
def test_compare_never_writes_into_a_run_it_reads(target, monkeypatch, capsys, tmp_path):
    a, b = _two_runs(tmp_path / "evals")
    before = {p: p.read_bytes() for p in (tmp_path / "evals").rglob("*") if p.is_file()}
    path = tmp_path / "evals" / target
    msg = _error(monkeypatch, capsys, "compare", str(a), str(b), "--json", str(path), "--permutations", "10")
    assert f"--json {path}" in msg
    assert {p: p.read_bytes() for p in (tmp_path / "evals").rglob("*") if p.is_file()} == before
    assert capsys.readouterr().out == ""  # refused before any test ran


def test_compare_refuses_a_negative_seed_and_an_unwritable_json_folder(monkeypatch, capsys, tmp_path):
    a, b = _two_runs(tmp_path / "evals")
    msg = _error(monkeypatch, capsys, "compare", str(a), str(b), "--seed", "-5")
    assert "--seed must be in [0, 4294967295], not -5" in msg
    out = _unwritable(tmp_path)
    msg = _error(monkeypatch, capsys, "compare", str(a), str(b), "--json", str(out / "c.json"))
    assert "is not writable" in msg


@pytest.mark.parametrize("run", ['"oops"', "[1, 2]", "5"])
def test_a_summary_whose_run_is_not_an_object_is_named(run, monkeypatch, capsys, tmp_path):
    a, b = _two_runs(tmp_path / "evals")
    summary = json.loads((b / "summary.json").read_text())
    (b / "summary.json").write_text(json.dumps(summary).replace(json.dumps(summary["run"]), run))
    msg = _error(monkeypatch, capsys, "table", str(tmp_path / "evals"), "--permutations", "10")
    assert f"{b / 'summary.json'}: `run` is {json.loads(run)!r}, not an object" in msg
    assert not list((tmp_path / "evals").glob("table*"))


def test_table_and_subsets_check_their_seed_first(monkeypatch, capsys, tmp_path):
    """`compare` and the evaluation checked --seed; `table` passed -5 to numpy (a traceback, after
    reading every summary) and `subsets` to random.Random, which reads -1 as 1: the same draw as
    --seed 1, silently."""
    msg = _error(monkeypatch, capsys, "table", str(tmp_path), "--seed", "-5")
    assert "--seed must be in [0, 4294967295], not -5" in msg
    msg = _error(monkeypatch, capsys, "subsets", "--source", str(tmp_path), "--seed", "-1",
                 "--output-dir", str(tmp_path / "subsets"))
    assert "--seed must be in [0, 4294967295], not -1" in msg
    assert not (tmp_path / "subsets").exists()
