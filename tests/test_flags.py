"""One flag scheme (issue 21 §5): one name per meaning across every script, and the old names still
parse, to the same action, hidden from --help.

--data the main input, --behaviour-table the behaviour CSV, --benchmarks the evaluation sets,
--eval-dir local copies of them, --output one file, --output-dir a folder, --limit N the first N,
--sample N a seeded draw of N.
"""

import argparse
import hashlib
import importlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from zebra import cli

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted(p.relative_to(ROOT).as_posix() for p in [*ROOT.glob("*.py"), *ROOT.glob("benchmarks/*.py")]
                 if p.name != "__init__.py")
SUBCOMMANDS = {"evaluate.py": ["compare", "table", "ifeval-responses", "subsets"], "build_table.py": ["study"]}
HELPS = [(s, None) for s in SCRIPTS] + [(s, sub) for s, subs in SUBCOMMANDS.items() for sub in subs]
RETIRED = ["--benchmark", "--ultrafeedback", "--data-dir", "--out"]  # no script shows these any more
# names that still mean something elsewhere, retired in these scripts (evaluate.py's --limit was its seeded draw)
RETIRED_HERE = {("evaluate.py", None): ["--limit"], ("evaluate.py", "subsets"): ["--n"], ("reproduce.py", None): ["--limit"],
                ("analyze.py", None): ["--output"], ("build_table.py", "study"): ["--output"]}

# (script, arguments the parser needs, old, new, a value): one per hidden alias
ALIASES = [
    *[(s, [], "--benchmark", "--behaviour-table", "t.csv")
      for s in ("binarize_score.py", "binarize_similarity.py", "binarize_combined.py", "binarize_baseline.py")],
    ("analyze.py", ["table"], "--benchmark", "--behaviour-table", "t.csv"),
    ("analyze.py", ["table"], "--output", "--output-dir", "out/a"),
    ("build_table.py", ["study", "--table", "t.csv"], "--output", "--output-dir", "out/s"),
    ("evaluate.py", ["--model", "m", "--output-dir", "o"], "--limit", "--sample", "7"),
    ("evaluate.py", ["--model", "m", "--output-dir", "o"], "--data-dir", "--eval-dir", "data/eval"),
    ("evaluate.py", ["subsets", "--source", "s"], "--n", "--sample", "7"),
    ("reproduce.py", [], "--ultrafeedback", "--data", "openbmb/UltraFeedback"),
    ("reproduce.py", [], "--data-dir", "--eval-dir", "data/eval"),
    ("reproduce.py", [], "--limit", "--sample", "7"),
    ("reproduce.py", [], "--out", "--output-dir", "out/r"),
    ("train_grid.py", [], "--ultrafeedback", "--data", "openbmb/UltraFeedback"),
    ("benchmarks/reference_iterrows.py", ["--output", "x.json"], "--benchmark", "--behaviour-table", "t.csv"),
    ("benchmarks/binarize_speed.py", [], "--data-dir", "--work-dir", "out/b"),
]


def _module(script: str, monkeypatch):
    """The script as a module, loaded by path (`import evaluate` could find Hugging Face's package)."""
    monkeypatch.syspath_prepend(str(ROOT))  # train_grid.py imports train_dpo; benchmarks/ imports zebra
    if script.startswith("benchmarks/"):
        return importlib.import_module(script.removesuffix(".py").replace("/", "."))
    spec = importlib.util.spec_from_file_location(f"flags_{Path(script).stem}", ROOT / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Parsed(BaseException):  # not an Exception: no script's `except` catches it
    pass


def _parse(script: str, argv: list[str], monkeypatch) -> dict:
    """The namespace the script's own parser makes of `argv`, stopped before anything runs."""
    module = _module(script, monkeypatch)
    parse = argparse.ArgumentParser.parse_known_args

    def stop(self, args=None, namespace=None):
        raise _Parsed(parse(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", stop)
    monkeypatch.setattr(sys, "argv", [script, *argv])
    with pytest.raises(_Parsed) as parsed:
        module.main()
    namespace, extra = parsed.value.args[0]
    assert not extra, f"{script}: {extra} not parsed"
    return vars(namespace)


def _help(script: str, sub: str | None, monkeypatch, capsys) -> str:
    module = _module(script, monkeypatch)
    monkeypatch.setattr(sys, "argv", [script, *([sub] if sub else []), "--help"])
    with pytest.raises(SystemExit):
        module.main()
    return capsys.readouterr().out


@pytest.mark.parametrize("script, sub", HELPS, ids=[f"{s} {sub or ''}".strip() for s, sub in HELPS])
def test_help_shows_no_old_flag_name(script, sub, monkeypatch, capsys):
    text = _help(script, sub, monkeypatch, capsys)
    assert "usage:" in text
    for old in RETIRED + RETIRED_HERE.get((script, sub), []):
        assert not re.search(rf"(?<![\w-]){re.escape(old)}(?![\w-])", text), f"{script} {sub or ''} --help shows {old}"


@pytest.mark.parametrize("script, needed, old, new, value", ALIASES, ids=[f"{a[0]} {a[2]}" for a in ALIASES])
def test_an_old_name_parses_as_the_new_one(script, needed, old, new, value, monkeypatch):
    given_new = _parse(script, [*needed, new, value], monkeypatch)
    given_old = _parse(script, [*needed, old, value], monkeypatch)
    assert given_old == given_new  # same dest, same type: the same run
    dest = new.removeprefix("--").replace("-", "_")
    assert str(given_old[dest]) == value


def test_renamed_refuses_a_name_the_parser_already_has():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data")
    ap.add_argument("--input")
    with pytest.raises(ValueError, match="--input is already a flag"):
        cli.renamed(ap, "--data", "--input")
    cli.renamed(ap, "--data", "--source")
    assert ap.parse_args(["--source", "x"]).data == "x" and "--source" not in ap.format_help()


def test_a_required_new_flag_is_satisfied_by_its_old_name(monkeypatch):
    args = _parse("build_table.py", ["study", "--table", "t.csv", "--output", "out/s"], monkeypatch)
    assert args["output_dir"] == "out/s"


def test_an_old_binarize_command_writes_the_same_pairs(tmp_path):
    """One end-to-end command per script family: the old spelling runs and writes what the new one does."""
    table = str(ROOT / "model_aware" / "benchmark.csv")
    digests = []
    for flag in ("--benchmark", "--behaviour-table"):
        out = tmp_path / f"{flag.strip('-')}.json"
        done = subprocess.run([sys.executable, str(ROOT / "binarize_score.py"), flag, table, "--limit", "5",
                               "--output", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        digests.append(hashlib.sha256(out.read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def test_an_old_reproduce_command_prints_the_same_plan(tmp_path):
    def plan(*flags):
        done = subprocess.run([sys.executable, str(ROOT / "reproduce.py"), "--dry-run", "--only", "qwen2.5-3b/dpo-sup", *flags],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    out = str(tmp_path / "o")
    old = plan("--out", out, "--ultrafeedback", "uf", "--limit", "64", "--data-dir", "mirror/eval")
    new = plan("--output-dir", out, "--data", "uf", "--sample", "64", "--eval-dir", "mirror/eval")
    assert old == new and "python train_grid.py --data uf" in new and "--sample 64 --eval-dir mirror/eval" in new
