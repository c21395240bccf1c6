"""--min-mb-sup-gap (issue 20 §3): SUP, SIM and SUP+SIM drop a selected pair whose MB-SUP gap is below
the minimum, counted in the meta; the default (None) writes the paper's pairs, byte for byte."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from zebra import strategies
from zebra.behaviour import read_benchmark
from zebra.errors import ZebraError
from zebra.pipeline import BinarizeConfig, binarize
from zebra.records import read_records

ROOT = Path(__file__).resolve().parent.parent
BENCH = str(ROOT / "model_aware" / "benchmark.csv")
MB_SUP = dict(zip(read_benchmark(BENCH).models, read_benchmark(BENCH).mb_sup))
# one prompt per pair of models, chosen first: the pair each strategy must make (tau -1 admits any pair)
PROMPTS = [("gpt-4", "bard"),  # gap 0.1325: the minimum below is exactly this gap
           ("llama-2-13b-chat", "wizardlm-13b"),  # gap 0.0002: below any minimum that keeps the first
           ("gpt-4", "starchat")]  # gap 0.938
AT = float(MB_SUP["gpt-4"] - MB_SUP["bard"])


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    path = tmp_path_factory.mktemp("pool") / "pairs.jsonl"
    rows = [{"source": "hand", "instruction": f"prompt {i}: {a} or {b}?",
             "completions": [{"model": m, "response": f"{m} answers prompt {i}.", "overall_score": 5.0 - k}
                             for k, m in enumerate((a, b))]} for i, (a, b) in enumerate(PROMPTS)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _run(strategy, out, pool, **kw):
    meta = binarize(BinarizeConfig(strategy, str(out), data=str(pool), benchmark=BENCH, tau=-1.0, progress=False, **kw))
    return meta, read_records(out)


def test_the_filter_keeps_a_gap_at_the_minimum_and_drops_one_below():
    keep = strategies.keep_min_mb_sup_gap([0.9, 0.9, 0.5, 0.7, np.nan], [0.8, 0.8 + 1e-9, 0.5, 0.2, 0.1], 0.1)
    assert keep.tolist() == [True, False, False, True, False]  # 0.9 − 0.8 is 0.09999999999999998 in floats: kept


@pytest.mark.parametrize("strategy", ["sup", "sim", "sim_least", "sup_sim"])
def test_a_pair_at_the_gap_is_kept_and_one_just_below_is_dropped(strategy, pool, tmp_path):
    meta, records = _run(strategy, tmp_path / "at.json", pool, min_mb_sup_gap=AT)
    assert [tuple(r["most_similar_pair"]) for r in records] == [PROMPTS[0], PROMPTS[2]]
    assert meta["counts"]["rows_skipped"]["mb_sup_gap_below_min"] == 1
    assert meta["settings"]["min_mb_sup_gap"] == AT
    meta, records = _run(strategy, tmp_path / "above.json", pool, min_mb_sup_gap=AT + 1e-9)
    assert [tuple(r["most_similar_pair"]) for r in records] == [PROMPTS[2]]
    assert meta["counts"]["rows_skipped"]["mb_sup_gap_below_min"] == 2
    assert meta["counts"]["rows_written"] == 1


def test_the_default_writes_the_same_bytes_as_no_minimum(pool, tmp_path):
    meta, records = _run("sup", tmp_path / "default.json", pool)
    assert len(records) == 3 and "mb_sup_gap_below_min" not in meta["counts"]["rows_skipped"]
    assert meta["settings"]["min_mb_sup_gap"] is None
    _run("sup", tmp_path / "zero.json", pool, min_mb_sup_gap=0.0)  # chosen is the higher MB-SUP: 0 keeps all
    assert (tmp_path / "default.json").read_bytes() == (tmp_path / "zero.json").read_bytes()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -0.1, 1.5])
def test_bad_minimums_are_refused(bad, pool, tmp_path):
    with pytest.raises(ZebraError, match="--min-mb-sup-gap"):
        _run("sup", tmp_path / "o.json", pool, min_mb_sup_gap=bad)
    assert not (tmp_path / "o.json").exists()


def test_the_baseline_has_no_gap_to_filter(pool, tmp_path):
    with pytest.raises(ZebraError, match="--min-mb-sup-gap: the baseline strategy orders a pair by instance score"):
        binarize(BinarizeConfig("baseline", str(tmp_path / "b.json"), data=str(pool), benchmark=BENCH,
                                progress=False, min_mb_sup_gap=0.1))
    done = subprocess.run([sys.executable, str(ROOT / "binarize_baseline.py"), "--min-mb-sup-gap", "0.1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "unrecognized arguments: --min-mb-sup-gap" in done.stderr


def test_the_script_flag_names_the_run_and_refuses_nan(pool, tmp_path):
    out = tmp_path / "sim.json"
    done = subprocess.run([sys.executable, str(ROOT / "binarize_similarity.py"), "--data", str(pool), "--tau", "-1",
                           "--min-mb-sup-gap", "0.1", "--output", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "mb_sup_gap_below_min 1" in done.stdout
    assert json.loads(Path(f"{out}.meta.json").read_text())["settings"]["min_mb_sup_gap"] == 0.1
    done = subprocess.run([sys.executable, str(ROOT / "binarize_score.py"), "--data", str(pool), "--min-mb-sup-gap", "nan",
                           "--output", str(tmp_path / "x.json")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and done.stderr.strip() == "error: --min-mb-sup-gap must be a finite number, not nan (MB-SUP lies in [0, 1])"


def test_the_setting_travels_with_the_pairs(pool, tmp_path):
    """A run with a minimum is named by it, and the card's command and training's settings.json carry it."""
    from zebra.pipeline import default_output
    from zebra.publish import binarize_command
    from zebra.training_data import preference_data

    base = "model_aware/UltraFeedback.similarity.anchor.json"
    assert default_output(base, BinarizeConfig("sup", "x", min_mb_sup_gap=0.1)).endswith(".anchor.min_mb_sup_gap-0.1.json")
    assert default_output(base, BinarizeConfig("sup", "x")) == base
    meta, _ = _run("sim", tmp_path / "sim.json", pool, min_mb_sup_gap=0.1)
    assert "--min-mb-sup-gap 0.1" in binarize_command(meta)
    assert preference_data(tmp_path / "sim.json")["min_mb_sup_gap"] == 0.1
