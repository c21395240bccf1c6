"""Hostile input (issue 14): nothing lost, nothing silently wrong, no traceback.

The command-line cases run each script as its own process: `run_cli` forks this (already
warm) interpreter and runs the script as `__main__`, exactly as `python script.py ARGS` would
after its imports, so a case costs a fraction of a second instead of a fresh interpreter's
imports. Two cases (`test_refusal_from_a_fresh_interpreter`, `test_real_sigint_...`) start a
real `python` to show the fork changes nothing. A refusal must: exit non-zero, print exactly
one `error:` line (log records aside) and no traceback, and leave no output or temporary file.
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from zebra.behaviour import read_benchmark
from zebra.data import SAMPLE, load_ultrafeedback
from zebra.errors import ZebraError
from zebra.pipeline import BinarizeConfig, binarize
from zebra.records import read_records, write_json_atomic

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "model_aware" / "benchmark.csv"
SAMPLE_ROWS = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]


# --------------------------------------------------------------------------- helpers


def run_cli(script: str, *args: str, env: dict | None = None, timeout: float = 120) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `python script ARGS` run in a forked copy of this process."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: become the script
        code = 1
        try:
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", closefd=False), write_through=True)
            sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", closefd=False), write_through=True)
            root = logging.getLogger()
            for handler in list(root.handlers):  # pytest's; the script configures its own
                root.removeHandler(handler)
            os.environ.update(env or {})
            os.chdir(ROOT)
            sys.argv = [str(ROOT / script), *args]
            try:
                runpy.run_path(str(ROOT / script), run_name="__main__")
                code = 0
            except SystemExit as exc:  # what the interpreter does with SystemExit
                if exc.code is None or isinstance(exc.code, int):
                    code = exc.code or 0
                else:
                    sys.stderr.write(f"{exc.code}\n")
                    code = 1
            except BaseException:  # noqa: BLE001 (a traceback is what the test looks for)
                import traceback

                traceback.print_exc()
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    os.close(out_w)
    os.close(err_w)
    chunks = {out_r: [], err_r: []}
    import selectors

    sel = selectors.DefaultSelector()
    for fd in chunks:
        sel.register(fd, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    open_fds = set(chunks)
    while open_fds and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1):
            data = os.read(key.fd, 1 << 16)
            if data:
                chunks[key.fd].append(data)
            else:
                sel.unregister(key.fd)
                open_fds.discard(key.fd)
    if open_fds:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    os.close(out_r)
    os.close(err_r)
    code = os.waitstatus_to_exitcode(status)
    return code, b"".join(chunks[out_r]).decode(), b"".join(chunks[err_r]).decode()


def message_lines(stderr: str) -> list[str]:
    """stderr without log records and progress bars: what the user is told."""
    lines = []
    for line in stderr.replace("\r", "\n").splitlines():
        if not line.strip() or line.startswith(("INFO ", "WARNING ")) or "it/s]" in line or "/s]" in line:
            continue
        lines.append(line)
    return lines


def assert_refused(code: int, stderr: str, *expected: str) -> str:
    assert code not in (0, -11, 139), (code, stderr)
    assert "Traceback" not in stderr, stderr
    lines = message_lines(stderr)
    assert len(lines) == 1, lines
    for part in expected:
        assert part in lines[0], (part, lines[0])
    return lines[0]


def assert_nothing_written(folder: Path, *keep: str) -> None:
    left = sorted(p.name for p in folder.iterdir() if p.name not in keep)
    assert left == [], left


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def clean_table(tmp_path_factory) -> Path:
    """The paper's table without its empty ultralm-65b row, so a run logs no warning about it."""
    path = tmp_path_factory.mktemp("table") / "benchmark.csv"
    path.write_text("".join(l for l in BENCH.read_text().splitlines(True) if not l.startswith("ultralm-65b")))
    return path


def binarize_in_process(strategy: str, output: Path, **kw) -> dict:
    kw.setdefault("benchmark", str(BENCH))
    kw.setdefault("progress", False)
    return binarize(BinarizeConfig(strategy, str(output), **kw))


# --------------------------------------------------------------------------- the CLI table

def _rows(n):
    return SAMPLE_ROWS[:n]


def _setup_data(tmp: Path) -> dict:
    """Files a case may point at: {name: path}."""
    files = {"data": write_jsonl(tmp / "data.jsonl", _rows(20))}
    files["null"] = tmp / "null.json"
    files["null"].write_text("null\n")
    files["empty"] = tmp / "empty.jsonl"
    files["empty"].write_text("")
    files["empty_list"] = tmp / "empty_list.json"
    files["empty_list"].write_text("[]\n")
    files["blank"] = tmp / "blank.jsonl"
    files["blank"].write_text("\n  \n\n")
    bad = [json.dumps(r) for r in _rows(5)]
    bad[2] = bad[2][:40]  # line 3 cut short
    files["malformed"] = tmp / "malformed.jsonl"
    files["malformed"].write_text("\n".join(bad) + "\n")
    files["empty_folder"] = tmp / "empty_folder"
    files["empty_folder"].mkdir()
    mixed = tmp / "mixed"
    mixed.mkdir()
    write_jsonl(mixed / "a.json", _rows(5))
    pd.DataFrame({"x": [1]}).to_parquet(mixed / "b.parquet")
    files["mixed"] = mixed
    files["empty_csv"] = tmp / "empty.csv"
    files["empty_csv"].write_text("")
    files["table_as_json"] = tmp / "table.json"  # a CSV under a name an output could have
    files["table_as_json"].write_text(BENCH.read_text())
    files["out_dir"] = tmp / "out.json"
    files["out_dir"].mkdir()
    files["meta_dir"] = tmp / "meta_is_dir.json.meta.json"
    files["meta_dir"].mkdir()
    return files


def _table(tmp: Path, edit) -> Path:
    df = pd.read_csv(BENCH, dtype=str, keep_default_na=False)
    edit(df)
    path = tmp / "edited.csv"
    df.to_csv(path, index=False)
    return path


def _set(row: int, col: int, value: str):
    def edit(df):
        df.iat[row, col] = value
    return edit


# (id, script, args with {name} placeholders for _setup_data files / {tmp} / {table}, expected message parts)
REFUSALS = [
    ("output-is-data", "binarize_score.py", ["--data", "{data}", "--output", "{data}"], ["would overwrite the input"]),
    ("output-is-benchmark", "binarize_score.py", ["--behaviour-table", "{table_as_json}", "--output", "{table_as_json}"],
     ["would overwrite the input"]),
    ("output-inside-data-folder", "binarize_score.py", ["--data", "{mixed}", "--output", "{mixed}/out.json"],
     ["would overwrite the input"]),
    ("output-is-a-folder", "binarize_score.py", ["--output", "{out_dir}"], ["is a folder"]),
    ("meta-is-a-folder", "binarize_score.py", ["--output", "{tmp}/meta_is_dir.json"], ["meta_is_dir.json.meta.json is a folder"]),
    ("tau-above-1", "binarize_score.py", ["--tau", "1.5"], ["--tau must be in [-1, 1]", "1.5"]),
    ("tau-inf", "binarize_similarity.py", ["--tau", "inf"], ["--tau must be a finite number"]),
    ("tau-nan", "binarize_combined.py", ["--tau", "nan"], ["--tau must be a finite number"]),
    ("tau-below-minus-1", "binarize_score.py", ["--tau", "-2"], ["--tau must be in [-1, 1]"]),
    ("rank-weight-nan", "binarize_combined.py", ["--rank-weight", "nan"], ["--rank-weight must be a finite number"]),
    ("similarity-weight-negative", "binarize_combined.py", ["--similarity-weight", "-0.5"], ["--similarity-weight must be >= 0"]),
    ("both-weights-zero", "binarize_combined.py", ["--rank-weight", "0", "--similarity-weight", "0"], ["both 0"]),
    ("temperature-nan", "binarize_score.py", ["--reliability-temperature", "nan"], ["--reliability-temperature must be a finite"]),
    ("temperature-zero", "binarize_baseline.py", ["--reliability-temperature", "0"], ["--reliability-temperature must be > 0"]),
    ("max-entropy-nan", "binarize_score.py", ["--max-entropy", "nan"], ["--max-entropy must be a finite"]),
    ("max-entropy-negative", "binarize_score.py", ["--max-entropy", "-1"], ["--max-entropy must be >= 0"]),
    ("entropy-quantile-inf", "binarize_similarity.py", ["--entropy-quantile", "inf"], ["--entropy-quantile must be a finite"]),
    ("entropy-quantile-zero", "binarize_similarity.py", ["--entropy-quantile", "0"], ["--entropy-quantile must be in (0, 1]"]),
    ("limit-zero", "binarize_score.py", ["--limit", "0"], ["--limit must be >= 1"]),
    ("seed-negative", "binarize_baseline.py", ["--seed", "-1"], ["--seed must be in [0, "]),
    ("json-null-file", "binarize_score.py", ["--data", "{null}"], ["null.json", "starts with 'n'"]),
    ("empty-jsonl", "binarize_score.py", ["--data", "{empty}"], ["empty.jsonl: empty file (0 bytes)"]),
    ("empty-json-list", "binarize_score.py", ["--data", "{empty_list}"], ["empty_list.json: no rows"]),
    ("blank-lines-only", "binarize_sim", ["--data", "{blank}"], ["blank.jsonl: no rows"]),
    ("malformed-line", "binarize_score.py", ["--data", "{malformed}"], ["malformed.jsonl:3: the line ends inside a JSON value"]),
    ("empty-folder", "binarize_score.py", ["--data", "{empty_folder}"], ["empty_folder: no .json, .jsonl, .parquet or .arrow"]),
    ("parquet-beside-json", "binarize_score.py", ["--data", "{mixed}"], ["more than one format", "a.json", "b.parquet"]),
    ("empty-benchmark-csv", "binarize_score.py", ["--behaviour-table", "{empty_csv}"], ["empty.csv: empty file"]),
    ("hub-id-offline", "binarize_score.py", ["--data", "nobody/no-such-dataset"], ["nobody/no-such-dataset", "HF_HUB_OFFLINE"]),
    ("table-inf", "binarize_score.py", ["--behaviour-table", "{table:inf}"], ["row 2 (gpt-4), column 'MMLU': 'inf' is not a finite number"]),
    ("table-negative", "binarize_score.py", ["--behaviour-table", "{table:negative}"], ["row 3 (gpt-3.5-turbo)", "'-72.54' is negative"]),
    ("table-over-100-percent", "binarize_score.py", ["--behaviour-table", "{table:over100}"], ["row 4 (bard), column 'Hellaswag'", "above 100%"]),
    ("table-plain-over-100", "binarize_score.py", ["--behaviour-table", "{table:plain_over100}"], ["row 2 (gpt-4)", "'853.7' is above 100"]),
    ("table-unit-mix", "binarize_score.py", ["--behaviour-table", "{table:unitmix}"],
     ["row 3 (gpt-3.5-turbo), column 'Instruction-Following Evaluation(IFeval)': '0.7254' mixes units"]),
    ("analyze-cut-nan", "analyze.py", ["table", "--cut", "nan", "--output", "{tmp}/analysis"], ["--cut must be a finite"]),
    ("analyze-n-boot-zero", "analyze.py", ["tfidf", "--n-boot", "0", "--output", "{tmp}/analysis"], ["--n-boot must be >= 1"]),
    ("analyze-price-inf", "analyze.py", ["cost", "--price-in", "inf", "--output", "{tmp}/analysis"], ["--price-in must be a finite"]),
    ("analyze-output-is-a-file", "analyze.py", ["table", "--output", "{data}"], ["is a file"]),
    ("potential-keep-nan", "select_potential.py", ["--data", "{data}", "--model", "none", "--keep", "nan", "--output", "{tmp}/p.json"],
     ["--keep must be a finite"]),
    ("potential-lambda-inf", "select_potential.py", ["--data", "{data}", "--model", "none", "--lambda", "inf", "--output", "{tmp}/p.json"],
     ["--lambda must be a finite"]),
    ("potential-output-is-data", "select_potential.py", ["--data", "{data}", "--model", "none", "--output", "{data}"],
     ["would overwrite the input"]),
    ("make-data-awkward-rate-nan", "make_ultrafeedback.py", ["--awkward-rate", "nan", "--output", "{tmp}/uf.jsonl"],
     ["--awkward-rate must be a finite"]),
    ("make-data-rows-zero", "make_ultrafeedback.py", ["--rows", "0", "--output", "{tmp}/uf.jsonl"], ["--rows must be >= 1"]),
    ("make-data-output-is-a-folder", "make_ultrafeedback.py", ["--rows", "3", "--output", "{out_dir_jsonl}"], ["is a folder"]),
]
TABLE_EDITS = {
    "inf": _set(0, 2, "inf"),
    "negative": _set(1, 1, "-72.54"),
    "over100": _set(2, 4, "184.70%"),
    "plain_over100": _set(0, 1, "853.7"),
    "unitmix": _set(1, 1, "0.7254"),
}


@pytest.mark.parametrize("case", REFUSALS, ids=[c[0] for c in REFUSALS])
def test_refusals_are_one_line_and_write_nothing(case, tmp_path, clean_table):
    name, script, args, expected = case
    script = "binarize_similarity.py" if script == "binarize_sim" else script
    files = _setup_data(tmp_path)
    files["out_dir_jsonl"] = tmp_path / "folder.jsonl"
    files["out_dir_jsonl"].mkdir()
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    def fill(arg: str) -> str:
        if arg.startswith("{table:"):
            return str(_table(tmp_path, TABLE_EDITS[arg[7:-1]]))
        return arg.format(tmp=tmp_path, **{k: v for k, v in files.items()})

    argv = [fill(a) for a in args]
    has_output = any(a in ("--output",) for a in argv) or script == "analyze.py"
    if not has_output:
        argv += ["--output", str(tmp_path / "result.json")]
    if script.startswith("binarize") and "--behaviour-table" not in argv:
        argv += ["--behaviour-table", str(clean_table)]
    t0 = time.perf_counter()
    code, _, err = run_cli(script, *argv, env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    line = assert_refused(code, err, *expected)
    assert line.startswith(("error:", "analyze.py:")), line
    if name == "hub-id-offline":
        assert time.perf_counter() - t0 < 20  # no network wait
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p.name != "edited.csv"}
    assert after == {p: b for p, b in before.items() if p.name != "edited.csv"}, "a file was written or changed"
    assert not (tmp_path / "analysis").exists()


def test_refusal_from_a_fresh_interpreter(tmp_path):
    """The same contract through a real `python` (no fork): exit 1, one line, no traceback."""
    data = write_jsonl(tmp_path / "d.jsonl", _rows(3))
    done = subprocess.run([sys.executable, "binarize_score.py", "--data", str(data), "--output", str(data)],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"error: --output {data} would overwrite the input {data}; choose another output name"]
    assert data.read_bytes() == write_jsonl(tmp_path / "again.jsonl", _rows(3)).read_bytes()


# --------------------------------------------------------------------------- Ctrl-C

SCRIPTS = ["binarize_score.py", "binarize_similarity.py", "binarize_combined.py", "binarize_baseline.py", "train_sft.py",
           "train_dpo.py", "evaluate.py", "reproduce.py", "train_grid.py", "analyze.py", "select_potential.py",
           "make_ultrafeedback.py"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_ctrl_c_in_any_script_is_one_line_and_exit_130(script, monkeypatch):
    """Ctrl-C while main() runs (here: when it parses its flags) prints one line, exit 130."""
    import argparse

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    # parse_args goes through parse_known_args, which train_grid.py calls itself; inherited by the fork
    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", interrupted)
    code, _, err = run_cli(script)
    assert code == 130, (code, err)
    assert message_lines(err) == [f"interrupted: {script} stopped by Ctrl-C before finishing"]


def _stalled_binarize(tmp_path: Path, out: Path) -> tuple[subprocess.Popen, Path]:
    """A real `python binarize_score.py` that stops for 30 s after its first batch, its
    temporary output open; returns once it got there."""
    data = write_jsonl(tmp_path / "d.jsonl", SAMPLE_ROWS)
    marker = tmp_path / "started"
    code = (
        "import runpy, signal, sys, time, pathlib\n"
        # a shell without job control starts background jobs with SIGINT ignored, and Python then
        # installs no KeyboardInterrupt handler: restore it, so the test does not depend on its launcher
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "import zebra.pipeline as p\n"
        "orig = p.process_batch\n"
        "def slow(*a, **k):\n"
        "    r = orig(*a, **k)\n"
        f"    pathlib.Path({str(marker)!r}).touch()\n"
        "    time.sleep(30)\n"
        "    return r\n"
        "p.process_batch = slow\n"
        "sys.argv = ['binarize_score.py'] + sys.argv[1:]\n"
        "runpy.run_path('binarize_score.py', run_name='__main__')\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, "--data", str(data), "--output", str(out)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert marker.exists(), proc.communicate()
    return proc, data


def test_sigkill_leftovers_are_removed_by_the_next_run(tmp_path):
    out = tmp_path / "out" / "sup.json"
    proc, data = _stalled_binarize(tmp_path, out)
    proc.kill()
    proc.communicate(timeout=60)
    left = [p.name for p in out.parent.iterdir()]
    assert left == [f".sup.json.tmp-{proc.pid}"]  # what SIGKILL leaves: nothing can clean up
    meta = binarize_in_process("sup", out, data=str(data))
    assert sorted(p.name for p in out.parent.iterdir()) == ["sup.json", "sup.json.meta.json"]
    assert len(read_records(out)) == meta["counts"]["rows_written"]


def test_real_sigint_mid_run_leaves_no_output(tmp_path):
    """A real SIGINT to a real `python binarize_score.py` in the middle of writing: exit 130, one
    line, and neither output, meta nor temporary file left behind."""
    out = tmp_path / "out" / "sup.json"
    proc, _ = _stalled_binarize(tmp_path, out)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert message_lines(err) == ["interrupted: binarize_score.py stopped by Ctrl-C before finishing"]
    assert list(out.parent.iterdir()) == []


# --------------------------------------------------------------------------- data reading


def test_cache_follows_content_not_mtime(tmp_path):
    """A file replaced by another with the same mtime is read anew (datasets keys on path + mtime)."""
    path = write_jsonl(tmp_path / "d.jsonl", _rows(10))
    stamp = (1_700_000_000, 1_700_000_000)
    os.utime(path, stamp)
    assert len(load_ultrafeedback(path)) == 10
    write_jsonl(path, _rows(4))
    os.utime(path, stamp)
    ds = load_ultrafeedback(path)
    assert len(ds) == 4
    assert ds["instruction"] == [r["instruction"] for r in _rows(4)]
    meta = binarize_in_process("sup", tmp_path / "o.json", data=str(path))
    assert meta["counts"]["rows_read"] == 4


def test_folder_of_one_format_reads_every_file(tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", _rows(3))
    write_jsonl(folder / "b.jsonl", SAMPLE_ROWS[3:8])
    assert len(load_ultrafeedback(folder)) == 8


def test_empty_and_null_prompts_are_skipped_and_counted(tmp_path):
    rows = [dict(r) for r in _rows(12)]
    rows[5]["instruction"] = ""
    rows[6]["instruction"] = "  \n\t"
    rows[7]["instruction"] = None
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    for strategy in ("sup", "baseline"):
        meta = binarize_in_process(strategy, tmp_path / f"{strategy}.json", data=str(data))
        c = meta["counts"]
        assert c["rows_skipped"]["empty_prompt"] == 3
        assert c["rows_read"] == c["rows_written"] + sum(c["rows_skipped"].values()) == 12
        prompts = [r["prompt"] for r in read_records(tmp_path / f"{strategy}.json")]
        assert all(p and p.strip() for p in prompts)


def test_missing_fields_are_named_for_what_they_are(tmp_path):
    """A completion without `response` counts as an empty response (not 'no model field'); one
    without `model`, or with a null model, is skipped and counted as no_model: one rule."""
    rows = json.loads(json.dumps(_rows(12)))
    del rows[4]["completions"][1]["response"]
    del rows[5]["completions"][0]["model"]
    del rows[8]["completions"][2]["model"]
    rows[9]["completions"][1]["model"] = None
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    meta = binarize_in_process("sup", tmp_path / "o.json", data=str(data))
    c = meta["counts"]
    assert c["responses"]["no_model"] == 3
    clean = binarize_in_process("sup", tmp_path / "clean.json", data=str(write_jsonl(tmp_path / "c.jsonl", _rows(12))))
    assert c["responses"]["empty"] == clean["counts"]["responses"]["empty"] + 1
    assert "None" not in c["model_not_in_table"]
    assert c["rows_read"] == c["rows_written"] + sum(c["rows_skipped"].values()) == 12


def test_na_overall_score_is_a_missing_score(tmp_path):
    rows = json.loads(json.dumps(_rows(12)))
    rows[2]["completions"][0]["overall_score"] = "N/A"
    rows[3]["completions"][1]["overall_score"] = "7.5"  # a number written as text still counts
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    meta = binarize_in_process("baseline", tmp_path / "o.json", data=str(data))
    assert meta["counts"]["responses"]["no_score"] == 1  # "N/A" only: the "7.5" was read as 7.5
    ref = binarize_in_process("baseline", tmp_path / "ref.json", data=str(write_jsonl(tmp_path / "r.jsonl", _rows(12))))
    assert ref["counts"]["responses"].get("no_score", 0) == 0
    scores = {s for r in read_records(tmp_path / "o.json") if r["prompt"] == rows[3]["instruction"]
              for s in (r["score_chosen"], r["score_rejected"])}
    original = {float(c["overall_score"]) for c in _rows(12)[3]["completions"]}
    assert scores <= (original | {7.5}) and len(scores) == 2


# --------------------------------------------------------------------------- outputs and meta


def test_meta_never_holds_bare_nan(tmp_path):
    from zebra.records import json_text

    write_json_atomic(tmp_path / "m.json", {"a": float("nan"), "b": [float("inf"), 1.5], "c": np.float64("-inf")})

    def refuse(name):
        raise AssertionError(f"bare {name} in JSON")

    assert json.loads((tmp_path / "m.json").read_text(), parse_constant=refuse) == {"a": None, "b": [None, 1.5], "c": None}
    assert "NaN" not in json_text({"x": [float("nan")]})


def test_output_and_meta_fail_together(tmp_path, monkeypatch):
    """If the meta file cannot be written, the output is not written either (and no temp is left)."""
    from zebra import records

    def full_disk(obj):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(records, "json_text", full_disk)
    out = tmp_path / "o.json"
    with pytest.raises(ZebraError, match="cannot write the meta file.*nothing was written"):
        binarize_in_process("sup", out)
    assert list(tmp_path.iterdir()) == []


def test_rerun_whose_output_rename_fails_leaves_neither_old_nor_new(tmp_path, monkeypatch):
    """A rerun over an earlier output that fails at the last step (the output's rename) must not
    leave the earlier output beside the new meta, which would look like a finished run."""
    from zebra import records

    out = tmp_path / "o.json"
    binarize_in_process("sup", out, limit=5)
    real_replace = os.replace

    def failing(src, dst):
        if Path(dst) == out:
            raise OSError(5, "Input/output error")
        return real_replace(src, dst)

    monkeypatch.setattr(records.os, "replace", failing)
    with pytest.raises(ZebraError, match="cannot write the output"):
        binarize_in_process("sup", out, limit=8)
    assert list(tmp_path.iterdir()) == []


def test_stale_temporary_files_of_killed_runs_are_removed(tmp_path):
    out = tmp_path / "o.json"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = [tmp_path / f".o.json.tmp-{dead_pid}", tmp_path / f".o.json.meta.json.tmp-{dead_pid}"]
    for p in stale:
        p.write_text("half a file")
    live = tmp_path / f".o.json.tmp-{os.getppid()}"  # a running process's: not ours to remove
    live.write_text("in progress")
    other = tmp_path / f".other.json.tmp-{dead_pid}"  # another output's
    other.write_text("x")
    binarize_in_process("sup", out, limit=5)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["o.json", "o.json.meta.json", live.name, other.name])


def test_shipped_table_still_reads_as_the_paper(tmp_path):
    """The original's mixed units (`86.40%`, `0.6371`, `85.37`, one unit per column) still pass."""
    t = read_benchmark(BENCH)
    assert len(t.models) == 16 and t.excluded == ("ultralm-65b",)
    assert round(float(t.mb_sup[t.index["gpt-4"]]), 2) == 0.99


# --------------------------------------------------------------------------- seeded corruption

CORRUPTIONS = ("truncate", "type_swap", "nan", "delete_field", "delete_row_bytes", "table_cell")


def _corrupt_value(rng: random.Random):
    return rng.choice([None, float("nan"), float("inf"), 3, -1.5, "", "  ", [], {}, "N/A", True, ["x"], {"a": 1}])


def _corrupt(rng: random.Random, tmp: Path, rows: list[dict]) -> tuple[Path, Path]:
    """One corrupted (data, table) pair; several corruptions of a kind at random places."""
    kind = rng.choice(CORRUPTIONS)
    as_list = rng.random() < 0.25  # a .json list instead of JSON lines

    def serialise(rows):  # NaN/Infinity as Python writes them
        return json.dumps(rows, indent=1) if as_list else "".join(json.dumps(r) + "\n" for r in rows)

    rows = json.loads(json.dumps(rows))
    table = BENCH.read_text()
    data_text = None
    if kind == "truncate":
        text = serialise(rows)
        data_text = text[: rng.randrange(len(text))]
    elif kind in ("type_swap", "nan", "delete_field"):
        for _ in range(rng.randint(1, 6)):
            row = rng.choice(rows)
            target = row
            if rng.random() < 0.7 and row.get("completions"):
                comps = row["completions"]
                if isinstance(comps, list) and comps:
                    target = rng.choice(comps)
                    if isinstance(target, dict) and rng.random() < 0.3 and isinstance(target.get("annotations"), dict):
                        target = target["annotations"]
            if not isinstance(target, dict) or not target:
                continue
            key = rng.choice(sorted(target))
            if kind == "delete_field":
                del target[key]
            elif kind == "nan":
                target[key] = float("nan") if rng.random() < 0.5 else float("inf")
            else:
                target[key] = _corrupt_value(rng)
        data_text = serialise(rows)
    elif kind == "delete_row_bytes":
        text = serialise(rows)
        a = rng.randrange(len(text))
        data_text = text[:a] + text[a + rng.randint(1, 200):]
    else:
        lines = table.splitlines()
        i = rng.randrange(1, len(lines))
        cells = lines[i].split(",")
        j = rng.randrange(len(cells))
        cells[j] = rng.choice(["", "nan", "inf", "-5", "150%", "0.5", "x", "1e400", "85.37%", "'"])
        lines[i] = ",".join(cells)
        if rng.random() < 0.2:
            del lines[rng.randrange(1, len(lines))]
        table = "\n".join(lines) + "\n"
        data_text = serialise(rows)
    data = tmp / ("data.json" if as_list else "data.jsonl")
    data.write_text(data_text, encoding="utf-8")
    bench = tmp / "table.csv"
    bench.write_text(table, encoding="utf-8")
    return data, bench


def _check_corruption_case(seed: int, tmp: Path) -> str:
    rng = random.Random(seed)
    data, bench = _corrupt(rng, tmp, SAMPLE_ROWS[: rng.choice([5, 40, 120])])
    strategy = rng.choice(["sup", "sim", "sim_least", "sup_sim", "baseline"])
    out = tmp / "out" / f"{strategy}.json"
    try:
        meta = binarize_in_process(strategy, out, data=str(data), benchmark=str(bench),
                                   drop_sources=("truthful_qa",) if strategy == "baseline" else ())
    except ZebraError as err:
        message = str(err)
        assert message and "\n" not in message, (seed, message)
        assert not out.parent.exists() or list(out.parent.iterdir()) == [], (seed, list(out.parent.iterdir()))
        return "refused"
    c = meta["counts"]
    assert c["rows_read"] == c["rows_written"] + sum(c["rows_skipped"].values()), (seed, c)
    written = read_records(out)
    assert len(written) == c["rows_written"], seed
    on_disk = json.loads(Path(f"{out}.meta.json").read_text(), parse_constant=lambda n: pytest.fail(f"bare {n}"))
    assert on_disk["counts"]["rows_read"] == c["rows_read"]
    for r in written:
        assert r["prompt"].strip() and r["chosen"][1]["content"].strip() and r["rejected"][1]["content"].strip()
        assert r["chosen"][1]["content"] != r["rejected"][1]["content"]
    return "written"


@pytest.mark.parametrize("seed", range(16))
def test_seeded_corruption(seed, tmp_path):
    """Random truncations, type swaps, NaNs and deletions of the shipped sample and table: each
    run either writes with read = written + skipped, or refuses with one line and no output."""
    _check_corruption_case(seed, tmp_path)


@pytest.mark.slow
def test_seeded_corruption_many(tmp_path):
    outcomes = []
    for seed in range(16, 316):
        case = tmp_path / str(seed)
        case.mkdir()
        outcomes.append(_check_corruption_case(seed, case))
    assert outcomes.count("written") > 30 and outcomes.count("refused") > 30  # both paths exercised
