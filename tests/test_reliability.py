"""Benchmark-agreement reliability (zebra.reliability): hand-worked vote patterns, the entropy cut
on the shipped sample, and the flags of the binarize scripts."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from zebra.behaviour import read_benchmark
from zebra.errors import ZebraError
from zebra.pipeline import BinarizeConfig, binarize
from zebra.records import read_records
from zebra.reliability import (
    PairReliability,
    agreement_entropy,
    benchmark_agreement,
    reliability_weight,
    weighted_quantile,
)

ROOT = Path(__file__).resolve().parent.parent
BENCH = str(ROOT / "model_aware" / "benchmark.csv")
LN2 = math.log(2)


def run(strategy, out, **kw):
    kw.setdefault("data", str(ROOT / "data" / "ultrafeedback_sample.jsonl"))  # the sample (the default is the pool)
    kw.setdefault("benchmark", BENCH)
    kw.setdefault("progress", False)
    return binarize(BinarizeConfig(strategy, str(out), **kw))


def seed003_weight(votes_for_label: int, votes_total: int, t: float = 0.2) -> float:
    """Seed 003's `get_answer_score` literally, for a two-answer vote (both answers observed)."""
    f = [votes_for_label / votes_total, (votes_total - votes_for_label) / votes_total]
    return math.exp(f[0] / t) / sum(math.exp(x / t) for x in f)


# Six benchmarks; model 0 is the chosen side in every hand-worked pattern below.
def table(*rows):
    return np.array(rows, dtype=float)


def test_unanimous_vote():
    raw = table([9, 9, 9, 9, 9, 9], [1, 1, 1, 1, 1, 1])
    a = benchmark_agreement(raw)
    assert a[0, 1] == 1.0 and a[1, 0] == 0.0
    assert agreement_entropy(a)[0, 1] == 0.0
    # softmax over {chosen, rejected} of (1/0.2, 0/0.2): 1/(1+e^-5)
    assert reliability_weight(a)[0, 1] == pytest.approx(1 / (1 + math.exp(-5)), abs=1e-12)
    assert reliability_weight(a)[0, 1] == pytest.approx(0.993307, abs=1e-6)
    # a label no benchmark supports (the RLAIF baseline can produce one): σ(−5)
    assert reliability_weight(a)[1, 0] == pytest.approx(0.006693, abs=1e-6)


@pytest.mark.parametrize("wins, entropy, weight", [
    (5, -(5 / 6) * math.log(5 / 6) - (1 / 6) * math.log(1 / 6), None),  # 0.4506
    (4, -(2 / 3) * math.log(2 / 3) - (1 / 3) * math.log(1 / 3), None),  # 0.6365
    (3, LN2, 0.5),
    (2, -(2 / 3) * math.log(2 / 3) - (1 / 3) * math.log(1 / 3), None),
])
def test_split_votes(wins, entropy, weight):
    raw = table([2] * wins + [0] * (6 - wins), [1] * 6)
    a = benchmark_agreement(raw)[0, 1]
    assert a == pytest.approx(wins / 6)
    assert agreement_entropy(np.array(a)) == pytest.approx(entropy, abs=1e-12)
    w = reliability_weight(np.array(a))
    assert w == pytest.approx(seed003_weight(wins, 6), abs=1e-12)
    if weight is not None:
        assert w == pytest.approx(weight)


def test_hand_values_of_the_split_patterns():
    a = np.array([5 / 6, 4 / 6, 3 / 6])
    assert agreement_entropy(a) == pytest.approx([0.450561, 0.636514, 0.693147], abs=1e-6)
    # 4–2: e^(0.667/0.2) / (e^(0.667/0.2) + e^(0.333/0.2)) = 1 / (1 + e^(-5/3))
    assert reliability_weight(a) == pytest.approx([0.965555, 0.841131, 0.5], abs=1e-6)
    assert reliability_weight(a, temperature=1.0) == pytest.approx([0.660756, 0.582570, 0.5], abs=1e-6)


def test_a_tie_is_half_a_vote_each():
    raw = table([2, 2, 2, 2, 2, 7], [1, 1, 1, 1, 1, 7])  # 5 wins, 1 tie
    a = benchmark_agreement(raw)
    assert a[0, 1] == pytest.approx(5.5 / 6) and a[1, 0] == pytest.approx(0.5 / 6)
    one_difference = table([2, 7, 7, 7, 7, 7], [1, 7, 7, 7, 7, 7])  # 1 win, 5 ties: near a coin flip
    assert benchmark_agreement(one_difference)[0, 1] == pytest.approx(7 / 12)
    assert agreement_entropy(benchmark_agreement(one_difference))[0, 1] == pytest.approx(0.679193, abs=1e-6)
    same = table([3, 4, 5, 6, 7, 8], [3, 4, 5, 6, 7, 8])
    assert benchmark_agreement(same)[0, 1] == 0.5
    assert agreement_entropy(benchmark_agreement(same))[0, 1] == pytest.approx(LN2)


def test_paper_table_matrices():
    t = read_benchmark(BENCH)
    r = PairReliability.from_raw(t.raw)
    m = len(t.models)
    assert r.agreement.shape == (m, m)
    np.testing.assert_allclose(r.agreement + r.agreement.T, 1.0)
    np.testing.assert_allclose(np.diag(r.entropy), LN2)
    np.testing.assert_allclose(r.entropy, r.entropy.T)
    g, b = t.index["gpt-4"], t.index["bard"]
    # bard beats gpt-4 on IFEval only (89.33 vs 85.37): 5–1
    assert r.agreement[g, b] == pytest.approx(5 / 6)
    # scipy.stats.entropy is what seed 003 calls
    scipy_stats = pytest.importorskip("scipy.stats")
    assert r.entropy[g, b] == pytest.approx(scipy_stats.entropy([5 / 6, 1 / 6]))


def test_weighted_quantile_is_numpy_percentile_of_the_repeated_values():
    rng = np.random.default_rng(0)
    for _ in range(200):
        values = rng.choice([0.0, 0.45, 0.64, 0.69, 0.1, 0.3], size=6, replace=False)
        counts = rng.integers(0, 6, size=6)
        if counts.sum() == 0:
            continue
        q = float(rng.random())
        expected = np.percentile(np.repeat(values, counts), 100 * q)
        assert weighted_quantile(values, counts, q) == pytest.approx(expected, abs=1e-12)
    assert weighted_quantile(np.array([0.0, 0.45, 0.69]), np.array([161, 63, 75]), 0.5) == 0.0


def test_resolve_cut_from_observed_pairs():
    r = PairReliability.from_raw(table([9] * 6, [10, 10, 5, 5, 5, 5], [1] * 6))
    c, rej = np.array([0, 0, 0, 1]), np.array([1, 1, 2, 2])  # entropies 0.6365, 0.6365, 0, 0
    r.observe(c, rej)
    cut = r.resolved(entropy_quantile=0.5)
    assert cut.max_entropy == pytest.approx(0.5 * agreement_entropy(np.array(4 / 6)))  # halfway
    assert cut.keep(c, rej).tolist() == [False, False, True, True]
    assert r.pair_counts == {(0, 1): 2, (0, 2): 1, (1, 2): 1} and not cut.pair_counts  # the second pass counts afresh
    assert r.resolved(max_entropy=0.7).keep(c, rej).all()
    assert r.resolved().keep(np.array([-1]), np.array([0])).all()  # no cut: keep even without votes
    assert not r.resolved(max_entropy=0.7).keep(np.array([-1]), np.array([0])).any()
    cols = r.columns(np.array([0, -1]), np.array([2, 0]))
    assert cols["agreement"][0] == 1.0 and np.isnan(cols["agreement"][1]) and np.isnan(cols["entropy"][1])
    assert cols["weight"][1] == 1.0


@pytest.mark.parametrize("kw, match", [
    ({"max_entropy": 0.5, "entropy_quantile": 0.5}, "not both"),
    ({"entropy_quantile": 0.0}, "entropy-quantile"),
    ({"entropy_quantile": 1.5}, "entropy-quantile"),
    ({"max_entropy": -0.1}, "max-entropy"),
    ({"reliability_temperature": 0.0}, "reliability-temperature"),
])
def test_bad_settings_fail_before_any_work(tmp_path, kw, match):
    with pytest.raises(ZebraError, match=match):
        run("sup", tmp_path / "o.json", data=str(tmp_path / "missing.jsonl"), **kw)
    assert not (tmp_path / "o.json").exists()


@pytest.fixture(scope="module")
def sup_all(tmp_path_factory):
    d = tmp_path_factory.mktemp("rel")
    meta = run("sup", d / "sup.json")
    return meta, read_records(d / "sup.json")


def test_every_record_carries_agreement_entropy_weight(sup_all):
    meta, recs = sup_all
    t = read_benchmark(BENCH)
    raw = t.raw
    for r in recs:
        c, rej = (t.index[m] for m in r["most_similar_pair"])
        a = ((raw[c] > raw[rej]).sum() + 0.5 * (raw[c] == raw[rej]).sum()) / raw.shape[1]
        assert r["agreement"] == pytest.approx(a)
        assert r["weight"] == pytest.approx(1 / (1 + math.exp(-(2 * a - 1) / 0.2)))
        assert 0 <= r["entropy"] <= LN2 + 1e-12
    hist = meta["reliability"]["entropy_histogram"]
    assert sum(hist.values()) == len(recs) == meta["counts"]["rows_written"]
    ws = np.array([r["weight"] for r in recs])
    assert meta["reliability"]["mean_weight_of_kept_rated_pairs"] == pytest.approx(ws.mean())


@pytest.mark.parametrize("kw", [{"entropy_quantile": 0.5}, {"entropy_quantile": 0.75}, {"max_entropy": 0.5}])
def test_entropy_cut_keeps_exactly_the_low_entropy_pairs(tmp_path, sup_all, kw):
    _, everything = sup_all
    entropies = np.array([r["entropy"] for r in everything])
    cut = kw.get("max_entropy") or np.percentile(entropies, 100 * kw["entropy_quantile"])
    expected = [r["prompt_id"] for r in everything if r["entropy"] <= cut]
    meta = run("sup", tmp_path / "cut.parquet", batch_size=37, **kw)  # many batches: the quantile is global
    got = pq.read_table(tmp_path / "cut.parquet").to_pylist()
    assert [r["prompt_id"] for r in got] == expected
    assert meta["counts"]["rows_skipped"]["entropy_above_max"] == len(everything) - len(expected)
    assert meta["reliability"]["max_entropy"] == pytest.approx(cut)
    assert 0 < len(expected) < len(everything)
    # the records themselves do not change, only which ones are written
    by_id = {r["prompt_id"]: r for r in everything}
    assert all(r["weight"] == pytest.approx(by_id[r["prompt_id"]]["weight"]) for r in got)


def test_shipped_sample_counts(sup_all):
    """What the README quotes: SUP on the shipped sample, seed 003's median cut."""
    meta, recs = sup_all
    # (161 / 63 / 33 / 42 before the order-free rule for repeated texts changed one pair)
    assert meta["reliability"]["entropy_histogram"] == {"0.0000": 160, "0.4506": 63, "0.6365": 33, "0.6931": 43}
    assert sum(r["entropy"] <= 0 for r in recs) == 160  # the median is 0: --entropy-quantile 0.5 keeps 160


def test_baseline_pairs_without_votes(tmp_path):
    meta = run("baseline", tmp_path / "b.json", drop_sources=("truthful_qa",))
    recs = read_records(tmp_path / "b.json")
    no_votes = [r for r in recs if r["entropy"] is None]
    assert no_votes and len(no_votes) == meta["reliability"]["pairs_without_votes"]
    assert all(r["weight"] == 1.0 and r["agreement"] is None for r in no_votes)
    cut = run("baseline", tmp_path / "c.json", drop_sources=("truthful_qa",), max_entropy=LN2)
    assert cut["counts"]["rows_skipped"]["no_benchmark_votes"] == len(no_votes)
    assert cut["counts"]["rows_written"] == len(recs) - len(no_votes)


def test_script_flags(tmp_path):
    out = tmp_path / "s.jsonl"
    proc = subprocess.run(
        # the sample: on the shipped pool every SUP+SIM pair is a 6-0 vote, and the cut drops none
        [sys.executable, "binarize_combined.py", "--data", "data/ultrafeedback_sample.jsonl", "--output", str(out),
         "--entropy-quantile", "0.5", "--reliability-temperature", "0.5"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "entropy_above_max" in proc.stdout
    meta = json.loads((tmp_path / "s.jsonl.meta.json").read_text())
    assert meta["settings"]["entropy_quantile"] == 0.5 and meta["reliability"]["temperature"] == 0.5
    recs = read_records(out)
    a = np.array([r["agreement"] for r in recs])
    np.testing.assert_allclose([r["weight"] for r in recs], 1 / (1 + np.exp(-(2 * a - 1) / 0.5)))
    bad = subprocess.run([sys.executable, "binarize_score.py", "--max-entropy", "0.5", "--entropy-quantile", "0.5",
                          "--output", str(tmp_path / "x.json")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and bad.stderr.strip().splitlines()[-1].startswith("error: give --max-entropy")


def test_variant_recipes():
    """recipes/variants/<model>/dpo-sup-{weighted,reliable,potential}.yaml: the paper's dpo-sup plus one change."""
    import yaml

    from zebra.recipes import load_recipe, recipe_command

    paths = sorted((ROOT / "recipes" / "variants").glob("*/*.yaml"))
    assert len(paths) == 12
    for p in paths:
        r = load_recipe(p)
        paper = yaml.safe_load((ROOT / "recipes" / p.parent.name / "dpo-sup.yaml").read_text())
        variant = p.stem.rsplit("-", 1)[1]
        changed = {k for k in set(r["args"]) | set(paper["args"]) if r["args"].get(k) != paper["args"].get(k)}
        assert changed == ({"output_dir", "weight_column"} if variant == "weighted" else {"output_dir"}), p
        assert r["accelerate_config"] == paper["accelerate_config"]
        expected_data = {"weighted": "out/data/sup.json", "reliable": "out/data/sup_reliable.json",
                         "potential": f"out/data/{p.parent.name}/sup_potential.json"}[variant]
        assert r["data"] == expected_data
        cmd = recipe_command(r)
        if variant == "weighted":
            assert cmd[cmd.index("--weight-column") + 1] == "weight"


def test_pair_numbers_are_the_matrices_entries():
    """`of` computes a pair's agreement, entropy and weight from the two rows of raw scores: the same
    numbers, bit for bit, as the M×M matrices (which a large table cannot afford)."""
    rng = np.random.default_rng(4)
    raw = rng.integers(0, 5, size=(30, 6)).astype(float)  # small integers: many tied votes
    r = PairReliability.from_raw(raw, 0.3)
    c, rej = rng.integers(0, 30, 500), rng.integers(0, 30, 500)
    got = r.of(c, rej)
    for name in ("agreement", "entropy", "weight"):
        np.testing.assert_array_equal(got[name], getattr(r, name)[c, rej])
