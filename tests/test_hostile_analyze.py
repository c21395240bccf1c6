"""Hostile input to analyze.py (issue 19 §2, §4): every bad records file, table, folder or setting
stops the run with one `error:` line, and a command's outputs appear all together or not at all.

Each case runs `python analyze.py ...` as its own (forked) process, as tests/test_hostile.py does.
The records are built here: five tiny binarize outputs over models of the paper's table.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.test_hostile import assert_refused, run_cli
from zebra.data import prompt_id

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "model_aware" / "benchmark.csv"
STEMS = ("sup", "sim", "sim_least", "sup_sim", "baseline")
ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def _msg(prompt, text):
    return [{"content": prompt, "role": "user"}, {"content": text, "role": "assistant"}]


def _record(k: int, chosen="gpt-4", rejected="bard", rank=1) -> dict:
    prompt = f"prompt {k}"
    return {"prompt": prompt, "prompt_id": prompt_id(prompt), "most_similar_pair": [chosen, rejected],
            "chosen": _msg(prompt, f"answer {k} by {chosen}"), "rejected": _msg(prompt, f"reply {k} by {rejected}"),
            "kinship_rank": rank}


def binarized(folder: Path, edit=None, stems=STEMS) -> Path:
    """Five binarize outputs of four records each; `edit(records)` changes sup.json's."""
    folder.mkdir(parents=True, exist_ok=True)
    for stem in stems:
        records = [_record(k, *(("gpt-4", "starchat") if k % 2 else ("bard", "pythia-12b"))) for k in range(4)]
        if stem == "sup" and edit is not None:
            records = edit(records)
        (folder / f"{stem}.json").write_text(json.dumps(records), encoding="utf-8")
    return folder


def files_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def _set(k: int, field: str, value):
    def edit(records):
        records[k][field] = value
        return records
    return edit


def _replace(k: int, value):
    def edit(records):
        records[k] = value
        return records
    return edit


BAD_RECORDS = [
    ("record-is-a-number", _replace(2, 5), ["sup.json:1: list item 3 expected to be a JSON object", "(5)"]),
    ("chosen-list-of-strings", _set(1, "chosen", ["hello"]), ["sup.json: record 1", "'chosen'"]),
    ("kinship-rank-text", _set(3, "kinship_rank", "abc"), ["sup.json: record 3", "'kinship_rank'", "'abc'"]),
    ("kinship-rank-nan", _set(3, "kinship_rank", float("nan")), ["sup.json:1: list item 4: NaN is not JSON"]),
    ("pair-of-numbers", _set(0, "most_similar_pair", [1, 2]), ["sup.json: record 0", "'most_similar_pair'"]),
    ("prompt-id-number", _set(0, "prompt_id", 7), ["sup.json: record 0", "'prompt_id'"]),
    ("assistant-content-number", _set(2, "rejected", [{"role": "user", "content": "p"}, {"role": "assistant", "content": 3}]),
     ["sup.json: record 2", "'rejected'"]),
]


@pytest.mark.parametrize("case", BAD_RECORDS, ids=[c[0] for c in BAD_RECORDS])
def test_a_bad_record_is_one_line_naming_it_and_writes_nothing(case, tmp_path):
    name, edit, expected = case
    folder = binarized(tmp_path / "bin", edit)
    out = tmp_path / "out"
    code, _, err = run_cli("analyze.py", "frequency", "kinship", "--binarized", str(folder), "--output-dir", str(out),
                           "--behaviour-table", str(BENCH), env=ENV)
    assert_refused(code, err, *expected)
    assert files_in(out) == []


def test_empty_records_everywhere_leave_no_file_behind(tmp_path):
    """`[]` in every file: one line; fig8_frequency.csv used to be left behind before the plot failed."""
    folder = binarized(tmp_path / "bin", lambda r: [])
    for stem in STEMS:
        (folder / f"{stem}.json").write_text("[]")
    out = tmp_path / "out"
    code, _, err = run_cli("analyze.py", "frequency", "kinship", "--binarized", str(folder), "--output-dir", str(out),
                           "--behaviour-table", str(BENCH), env=ENV)
    assert_refused(code, err, "no records")
    assert files_in(out) == []


def test_one_empty_output_is_left_out_and_named(tmp_path):
    folder = binarized(tmp_path / "bin", lambda r: [])
    out = tmp_path / "out"
    code, _, err = run_cli("analyze.py", "frequency", "--binarized", str(folder), "--output-dir", str(out),
                           "--behaviour-table", str(BENCH), env=ENV)
    assert code == 0, err
    assert "sup.json holds no records; SUP is left out" in err
    import pandas as pd

    freq = pd.read_csv(out / "fig8_frequency.csv")
    assert sorted(set(freq["strategy"])) == ["Baseline", "SIM", "SIM-least", "SUP+SIM"]


@pytest.mark.parametrize("kind", ["missing", "empty", "file"])
def test_binarized_folder_missing_empty_or_a_file(kind, tmp_path):
    folder = tmp_path / "bin"
    if kind == "empty":
        folder.mkdir()
    elif kind == "file":
        folder.write_text("x")
    out = tmp_path / "out"
    code, _, err = run_cli("analyze.py", "frequency", "--binarized", str(folder), "--output-dir", str(out),
                           "--behaviour-table", str(BENCH), env=ENV)
    expected = {"missing": "does not exist", "empty": "holds none of", "file": "is not a folder"}[kind]
    assert_refused(code, err, "--binarized", str(folder), expected)
    assert files_in(out) == []


def test_an_output_name_taken_by_a_folder_is_one_line_and_leaves_nothing(tmp_path):
    """An OSError while writing (here: fig10_mb_sim.csv is a folder) is one line, and the outputs
    already made (fig10_normalised.csv) are not left behind."""
    out = tmp_path / "out"
    (out / "fig10_mb_sim.csv").mkdir(parents=True)
    code, _, err = run_cli("analyze.py", "table", "--output-dir", str(out), "--behaviour-table", str(BENCH), env=ENV)
    assert_refused(code, err, "fig10_mb_sim.csv")
    assert files_in(out) == ["fig10_mb_sim.csv"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_read_only_output_dir(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    try:
        code, _, err = run_cli("analyze.py", "table", "--output-dir", str(out), "--behaviour-table", str(BENCH), env=ENV)
    finally:
        out.chmod(0o755)
    assert_refused(code, err, "--output-dir", "not writable")
    assert files_in(out) == []


@pytest.mark.parametrize("dpi", ["3000", "0", "-5"])
def test_dpi_out_of_range_is_refused_before_any_work(dpi, tmp_path):
    out = tmp_path / "out"
    code, _, err = run_cli("analyze.py", "table", "frequency", "--dpi", dpi, "--output-dir", str(out),
                           "--behaviour-table", str(BENCH), env=ENV)
    assert_refused(code, err, "--dpi")
    assert files_in(out) == []


def test_cost_with_an_overflowing_result_is_refused(tmp_path):
    out = tmp_path / "out"
    code, _, err = run_cli("analyze.py", "cost", "--tokens-in", "1e308", "--output-dir", str(out),
                           "--behaviour-table", str(BENCH), "--data", str(ROOT / "data" / "ultrafeedback_sample.jsonl"), env=ENV)
    assert_refused(code, err, "--tokens-in", "not a finite")
    assert files_in(out) == []


def test_pca_of_a_one_benchmark_table_is_one_line(tmp_path):
    table = tmp_path / "one.csv"
    table.write_text("Model,MMLU\ngpt-4,86.4\nbard,70\nalpaca-7b,30\n")
    out = tmp_path / "out"
    code, _, err = run_cli("analyze.py", "pca", "--output-dir", str(out), "--behaviour-table", str(table), env=ENV)
    assert_refused(code, err, "one.csv", "pca", "two benchmark")
    assert files_in(out) == []


@pytest.mark.parametrize("script,flag", [("analyze.py", "--instances"), ("binarize_score.py", "--limit")])
def test_an_integer_beyond_float_range_is_one_line(script, flag, tmp_path):
    """`--instances 999…9` (400 digits) passed argparse's int and crashed zebra.settings.check_number
    with OverflowError in every script that checks an integer flag."""
    out = tmp_path / "out"
    args = ["cost", "--output-dir", str(out)] if script == "analyze.py" else ["--output", str(out / "o.json")]
    code, _, err = run_cli(script, *args, flag, "9" * 400, "--behaviour-table", str(BENCH), env=ENV)
    assert_refused(code, err, flag, "400-digit number")
    assert files_in(out) == []


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs Linux sysfs, where even root cannot make a folder")
def test_an_output_dir_that_cannot_be_made_is_one_line():
    """The root-proof twin of the read-only case: sysfs refuses a new folder (EPERM) to root too;
    mkdir's OSError was a traceback."""
    code, _, err = run_cli("analyze.py", "table", "--output-dir", "/sys/zebra-analysis-test", "--behaviour-table", str(BENCH), env=ENV)
    assert_refused(code, err, "--output-dir /sys/zebra-analysis-test is not writable")


def test_a_killed_runs_staging_folder_is_removed_by_the_next_run(tmp_path):
    """SIGKILL leaves `.analyze-<pid>-*` behind; the next run into the folder removes it when that
    process is gone, and leaves a live process's alone."""
    out = tmp_path / "out"
    dead = out / ".analyze-999999999-abc"  # no such pid
    live = out / f".analyze-{os.getpid()}-abc"
    for stage in (dead, live):
        (stage / "binarized").mkdir(parents=True)
    code, _, err = run_cli("analyze.py", "table", "--output-dir", str(out), "--behaviour-table", str(BENCH), env=ENV)
    assert code == 0, err
    assert not dead.exists() and live.exists()
    assert (out / "fig10_table.png").is_file()
