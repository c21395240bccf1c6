"""make_ultrafeedback.py (zebra.synthetic's script): where it writes, and that it keeps the shipped
sample safe. The rows themselves are checked in test_pipeline.py (the sample is what it makes)."""

import json
import shutil
import sys
from pathlib import Path

import pytest

from zebra.data import SAMPLE

ROOT = Path(__file__).resolve().parent.parent


def _make(monkeypatch, *argv):
    monkeypatch.syspath_prepend(str(ROOT))
    import make_ultrafeedback

    monkeypatch.setattr(sys, "argv", ["make_ultrafeedback.py", *argv])
    make_ultrafeedback.main()


def test_no_arguments_leave_the_shipped_sample_alone(tmp_path, monkeypatch):
    """With no --output the script used to rewrite data/ultrafeedback_sample.jsonl in place."""
    checkout = tmp_path / "data" / "ultrafeedback_sample.jsonl"  # a checkout's sample, where cwd says
    checkout.parent.mkdir()
    shutil.copyfile(SAMPLE, checkout)
    monkeypatch.chdir(tmp_path)
    _make(monkeypatch, "--rows", "12", "--response-words", "3")
    assert checkout.read_bytes() == SAMPLE.read_bytes()
    rows = [json.loads(line) for line in (tmp_path / "out" / "ultrafeedback_made_up.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and rows[0]["completions"][0]["model"]


def test_the_shipped_sample_is_written_only_by_its_own_settings(tmp_path, monkeypatch):
    """The guard, tried on a copy standing in for the shipped sample: the test never writes into the
    checkout (it used to rewrite data/ultrafeedback_sample.jsonl and restore it)."""
    monkeypatch.syspath_prepend(str(ROOT))
    import make_ultrafeedback as script

    stand_in = tmp_path / "data" / "ultrafeedback_sample.jsonl"
    stand_in.parent.mkdir()
    stand_in.write_bytes(SAMPLE.read_bytes())
    assert script.SAMPLE == SAMPLE  # the script's own name for the shipped sample is the package's
    monkeypatch.setattr(script, "SAMPLE", stand_in)
    tracked, written_at = SAMPLE.read_bytes(), SAMPLE.stat().st_mtime_ns
    with pytest.raises(SystemExit, match="ultrafeedback_sample.jsonl is the shipped sample.*--rows 300"):
        _make(monkeypatch, "--rows", "12", "--output", str(stand_in))
    assert stand_in.read_bytes() == tracked  # refused: untouched
    stand_in.write_bytes(b"")  # its own settings may write it, and they make the tracked bytes
    _make(monkeypatch, "--output", str(stand_in))
    assert stand_in.read_bytes() == tracked
    assert SAMPLE.stat().st_mtime_ns == written_at  # the checkout's file was never opened for writing


def test_help_shows_every_default(monkeypatch, capsys):
    with pytest.raises(SystemExit):
        _make(monkeypatch, "--help")
    text = capsys.readouterr().out
    for flag, default in [("--rows", "300"), ("--seed", "0"), ("--response-words", "40"), ("--awkward-rate", "0.05"),
                          ("--output", "out/ultrafeedback_made_up.jsonl")]:
        entry = text[text.index(f"  {flag} "):]
        assert f"(default: {default})" in " ".join(entry.split("\n  --")[0].split()), flag
