"""Every script's --help shows its docstring's commands as they can be pasted: a `\` line
continuation in a plain docstring joins the two lines into one run of spaces, so each script's
module docstring is a raw string and its parser keeps the description's line breaks."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted(p.relative_to(ROOT).as_posix() for p in [*ROOT.glob("*.py"), *ROOT.glob("benchmarks/*.py")]
                 if p.name != "__init__.py")


def _docstring(path: Path) -> tuple[str, str]:
    """(the docstring as Python reads it, its text as written between the quotes)."""
    src = path.read_text(encoding="utf-8")
    node = ast.parse(src).body[0]
    assert isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant), f"{path.name}: no module docstring"
    written = ast.get_source_segment(src, node)
    return node.value.value, re.sub(r'^[rR]?"""|"""$', "", written)


@pytest.mark.parametrize("script", SCRIPTS)
def test_docstring_reads_as_written(script):
    doc, written = _docstring(ROOT / script)
    assert doc == written, f"{script}: make the module docstring raw (r\"\"\"...\"\"\") so `\\` + newline survives"


@pytest.mark.parametrize("script", SCRIPTS)
def test_parser_keeps_the_description_line_breaks(script):
    src = (ROOT / script).read_text(encoding="utf-8")
    for call in re.findall(r"ArgumentParser\((.*?)\)\n", src):
        if "description=" in call:
            assert "RawDescriptionHelpFormatter" in call, f"{script}: {call}"


def test_help_shows_continued_commands_on_their_own_lines():
    help_text = subprocess.run([sys.executable, str(ROOT / "select_potential.py"), "--help"], cwd=ROOT,
                               capture_output=True, text=True, timeout=60).stdout
    assert "    python select_potential.py --data out/sup.json \\\n        --model " in help_text
    assert not re.search(r"\S {4,}--", help_text.split("\noptions:")[0])  # no collapsed continuation


def _help_of(script: str, monkeypatch, capsys) -> str:
    import importlib

    monkeypatch.syspath_prepend(str(ROOT))
    module = importlib.import_module(script.removesuffix(".py").replace("/", "."))
    monkeypatch.setattr(sys, "argv", [script, "--help"])
    with pytest.raises(SystemExit):
        module.main()
    return capsys.readouterr().out


@pytest.mark.parametrize("script", ["analyze.py", "make_ultrafeedback.py", "binarize_score.py", "binarize_similarity.py",
                                    "binarize_combined.py", "binarize_baseline.py", "benchmarks/binarize_speed.py"])
def test_every_option_with_a_value_shows_its_default(script, monkeypatch, capsys):
    options = _help_of(script, monkeypatch, capsys).split("\noptions:\n", 1)[1]
    entries = re.split(r"\n(?=  -)", options)
    missing = [e.split()[0] for e in entries
               if re.match(r"  --[\w-]+ [A-Z{]", e) and "(default" not in " ".join(e.split())]
    assert not missing, f"{script}: no default shown for {missing}"
