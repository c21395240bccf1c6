"""The analyses' numbers: PCA and clusters on the shipped table, TF–IDF on pairs with a known
answer, agreement and frequency counts on hand-made records, Table 3's arithmetic."""

import json
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from zebra import analysis as A
from zebra.behaviour import read_benchmark
from zebra.cost import PAPER_TABLE3, Price, cost_table, estimate_tokens, per_instance_cost
from zebra.data import prompt_id

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "model_aware" / "benchmark.csv"
IFEVAL = "Instruction-Following Evaluation(IFeval)"
GROUPS = {"knowledge": ["MMLU", "MMLU-pro"], "reasoning": ["Hellaswag", "ARC-easy", "ARC-Challenge"],
          "instruction-following": ["IFeval"]}


@pytest.fixture(scope="module")
def table():
    return read_benchmark(BENCH)


# ----------------------------------------------------------------------------- behaviour table


def test_pca_explained_variance_and_orientation(table):
    pca = A.behaviour_pca(table)
    assert pca.explained_variance_ratio[:2] == pytest.approx([0.738424, 0.134768], abs=1e-6)
    assert pca.explained_variance_ratio.sum() == pytest.approx(1.0)
    # an independent implementation agrees, up to each component's sign
    from sklearn.decomposition import PCA

    ref = PCA(2).fit(table.normalised)
    assert pca.explained_variance_ratio[:2] == pytest.approx(ref.explained_variance_ratio_, abs=1e-9)
    assert np.abs(pca.coords) == pytest.approx(np.abs(ref.transform(table.normalised)), abs=1e-9)
    pc = dict(zip(pca.models, pca.coords))
    # sign convention = the paper's quadrants: GPT-4/Bard top-left, small models top-right, LLaMA-2 below
    assert pc["gpt-4"][0] < 0 < pc["gpt-4"][1] and pc["bard"][0] < 0 < pc["bard"][1]
    assert pc["pythia-12b"][0] > 0 and pc["starchat"][0] > 0 and pc["alpaca-7b"][1] > 0
    assert all(pc[m][1] < 0 for m in ("llama-2-7b-chat", "llama-2-13b-chat", "llama-2-70b-chat", "falcon-40b-instruct"))


def test_clusters_at_0_4_per_group(table):
    got = {r.name: r.clusters for r in A.cluster_groups(table, GROUPS, "rms", "complete", 0.4)}
    assert got["knowledge"] == [
        ["gpt-4", "bard"],
        ["gpt-3.5-turbo", "llama-2-7b-chat", "llama-2-13b-chat", "llama-2-70b-chat", "ultralm-13b", "wizardlm-13b",
         "wizardlm-70b", "vicuna-33b", "falcon-40b-instruct", "mpt-30b-chat"],
        ["wizardlm-7b", "alpaca-7b", "starchat", "pythia-12b"],
    ]
    assert got["reasoning"] == [
        ["gpt-4", "gpt-3.5-turbo", "bard", "wizardlm-70b"],
        ["llama-2-7b-chat", "llama-2-13b-chat", "llama-2-70b-chat", "ultralm-13b", "wizardlm-7b", "wizardlm-13b",
         "vicuna-33b", "falcon-40b-instruct"],
        ["alpaca-7b", "starchat", "pythia-12b"],
        ["mpt-30b-chat"],
    ]
    assert got["instruction-following"] == [
        ["gpt-4", "gpt-3.5-turbo", "bard"],
        ["llama-2-7b-chat", "llama-2-13b-chat", "llama-2-70b-chat", "wizardlm-13b", "alpaca-7b", "falcon-40b-instruct",
         "mpt-30b-chat", "starchat", "pythia-12b"],
        ["ultralm-13b", "wizardlm-7b", "wizardlm-70b", "vicuna-33b"],
    ]
    full = A.cluster_models(table, "all", "rms", "complete", 0.4)
    assert full.clusters[0] == ["gpt-4", "gpt-3.5-turbo", "bard"] and len(full.clusters) == 3


def test_complete_linkage_cut_bounds_every_cluster_diameter(table):
    from scipy.spatial.distance import squareform

    for res in A.cluster_groups(table, GROUPS, "rms", "complete", 0.4):
        sub = table.subset(list(res.benchmarks))
        d = squareform(A.pairwise_distance(sub.normalised, "rms"))
        for c in np.unique(res.labels):
            idx = np.flatnonzero(res.labels == c)
            assert d[np.ix_(idx, idx)].max() <= 0.4 + 1e-12


def test_distances_rms_is_abs_difference_on_one_benchmark_and_cosine_collapses_knowledge(table):
    ife = table.subset([IFEVAL]).normalised
    from scipy.spatial.distance import squareform

    d = squareform(A.pairwise_distance(ife, "rms"))
    assert d[0, 2] == pytest.approx(abs(ife[0, 0] - ife[2, 0]))
    assert squareform(A.pairwise_distance(ife, "cosine"))[0, 2] == pytest.approx(d[0, 2])  # falls back, not all-zero
    # why rms is the default: cosine ignores level, so at 0.4 only pythia-12b leaves the knowledge cluster
    cos = A.cluster_groups(table, {"knowledge": GROUPS["knowledge"]}, "cosine", "complete", 0.4)[0]
    assert [len(c) for c in cos.clusters] == [15, 1] and cos.clusters[1] == ["pythia-12b"]
    with pytest.raises(A.AnalysisError, match="--cluster-metric"):
        A.pairwise_distance(ife, "manhattan")


def test_resolve_benchmarks_by_short_label_and_clear_error(table):
    assert A.resolve_benchmarks(table, ["ifeval", "MMLU"]) == [IFEVAL, "MMLU"]
    assert A.short_label(IFEVAL) == "IFeval" and A.short_label("MMLU-pro") == "MMLU-pro"
    with pytest.raises(A.AnalysisError, match="'GSM8K'.*columns are"):
        A.resolve_benchmarks(table, ["GSM8K"])


def test_radar_pairs_are_chosen_by_mb_sim(table):
    pairs = A.radar_pairs(table)
    assert pairs["similar"][:2] == ("llama-2-7b-chat", "llama-2-13b-chat")
    assert pairs["similar"][2] == pytest.approx(0.996, abs=5e-4)  # Figure 10
    assert pairs["different"][:2] == ("llama-2-7b-chat", "starchat")
    assert pairs["different"][2] == pytest.approx(0.422, abs=5e-4)
    anchored = A.radar_pairs(table, "wizardlm-7b")
    assert anchored["similar"][1:] == ("wizardlm-70b", pytest.approx(0.925, abs=5e-4))
    assert anchored["different"][1:] == ("starchat", pytest.approx(0.439, abs=5e-4))
    with pytest.raises(A.AnalysisError, match="--anchor 'gpt-5'"):
        A.radar_pairs(table, "gpt-5")


# ----------------------------------------------------------------------------- records


def _msg(prompt, text):
    return [{"content": prompt, "role": "user"}, {"content": text, "role": "assistant"}]


def _record(prompt, chosen, rejected, c_text="a", r_text="b", rank=1):
    return {"prompt": prompt, "prompt_id": prompt_id(prompt), "most_similar_pair": [chosen, rejected],
            "chosen": _msg(prompt, c_text), "rejected": _msg(prompt, r_text), "kinship_rank": rank}


def test_choice_frequency_and_kinship_on_a_known_output():
    recs = [_record("p1", "gpt-4", "bard", rank=1), _record("p2", "gpt-4", "starchat", rank=3),
            _record("p3", "bard", "gpt-4", rank=1), _record("p4", "bard", "starchat", rank=None)]
    pairs = {"S": A.pairs_frame(recs)}
    freq = A.choice_frequency(pairs, order=["gpt-4", "bard", "starchat"]).set_index("model")
    assert freq.index.tolist() == ["gpt-4", "bard", "starchat"]
    assert freq["chosen"].tolist() == [2, 2, 0] and freq["rejected"].tolist() == [1, 1, 2]
    assert freq.loc["starchat", "rejected_share"] == pytest.approx(0.5)
    dist, stats = A.kinship_distribution(pairs)
    assert dict(zip(dist["kinship_rank"], dist["count"])) == {1: 2, 3: 1}
    assert stats["S"] == {"n": 3, "mean": pytest.approx(5 / 3), "missing": 1}


def test_pairs_frame_names_the_bad_record():
    with pytest.raises(A.AnalysisError, match="record 1: 'most_similar_pair'"):
        A.pairs_frame([_record("p", "a", "b"), {"most_similar_pair": ["a"]}], "x.json")


# ----------------------------------------------------------------------------- TF–IDF


def test_tfidf_cosine_known_answers_and_direct_computation():
    a = ["the cat sat on the mat", "alpha beta", "red green blue", ""]
    b = ["the cat sat on the mat", "gamma delta", "red green yellow", "anything"]
    cos = A.tfidf_pair_cosine(a, b)
    assert cos[0] == pytest.approx(1.0) and cos[1] == pytest.approx(0.0) and cos[3] == 0.0
    # direct: raw counts × smoothed idf over the 8 documents, L2 rows
    docs = a + b
    vocab = sorted({w for d in docs for w in d.split() if len(w) > 1})
    df = np.array([sum(w in d.split() for d in docs) for w in vocab])
    idf = np.log((1 + len(docs)) / (1 + df)) + 1
    vec = lambda d: (lambda v: v / np.linalg.norm(v))(np.array([d.split().count(w) for w in vocab]) * idf)  # noqa: E731
    assert cos[2] == pytest.approx(vec(a[2]) @ vec(b[2]))
    assert 0.5 < cos[2] < 1.0


def test_bootstrap_ci_is_seeded_and_brackets_the_mean():
    x = np.arange(100, dtype=float)
    m, lo, hi = A.bootstrap_ci(x, n_boot=500, seed=3)
    assert m == pytest.approx(49.5) and lo < m < hi
    # the interval's width matches the normal approximation of the standard error
    assert (hi - lo) / (2 * 1.96) == pytest.approx(x.std() / math.sqrt(x.size), rel=0.15)
    assert A.bootstrap_ci(x, n_boot=500, seed=3) == (m, lo, hi)
    assert A.bootstrap_ci(np.full(10, 0.25), n_boot=50) == (0.25, 0.25, 0.25)


def test_tfidf_check_on_hand_made_most_and_least_pairs():
    prompts = [f"p{i}" for i in range(6)]
    words = ["apple", "river", "stone", "cloud", "ember", "frost"]
    most = A.pairs_frame([_record(p, "gpt-4", "bard", f"{w} {w}s", f"{w} {w}s") for p, w in zip(prompts, words)])
    least = A.pairs_frame([_record(p, "gpt-4", "starchat" if i else "bard", f"{w} one", f"zz{i} other{i}")
                           for i, (p, w) in enumerate(zip(prompts, words))])
    res, per = A.tfidf_check(most, least, n_boot=200, seed=0)
    assert res["most"]["mean"] == pytest.approx(1.0) and res["least"]["mean"] == pytest.approx(0.0)
    assert res["paired_gap"]["n"] == 6 and res["paired_gap"]["mean"] == pytest.approx(1.0)
    assert res["paired_gap"]["same_pair"] == 1  # p0 pairs gpt-4 with bard in both files
    assert len(per) == 12 and set(per["pairing"]) == {"most", "least"}


# ----------------------------------------------------------------------------- Table 3


def test_cost_table_reproduces_the_paper_and_the_default_unit_cost():
    for _, _, n, unit, total in PAPER_TABLE3:
        assert round(n * unit) == total
    assert per_instance_cost(6000, 1200, Price(30, 60)) == pytest.approx(0.252)
    df = cost_table(64_000, 6000, 1200, Price(30, 60), models=16, benchmarks=6, cost_per_run=2.5, measured=(1000, 100))
    calc = df[df["source"] == "calculation"].reset_index(drop=True)
    assert calc.loc[0, "total_cost_usd"] == pytest.approx(16_128)
    assert calc.loc[1, "unit_cost_usd"] == pytest.approx(0.036)  # 1000·30/1e6 + 100·60/1e6
    assert calc.loc[2, "total_cost_usd"] == pytest.approx(16 * 6 * 2.5)  # independent of the instance count
    tin, tout = estimate_tokens(np.array([400.0]), np.array([3600.0]), np.array([4]))
    assert (tin, tout) == pytest.approx((4 * (500 + 1000), 4 * 75 * 4))


@pytest.mark.parametrize("kwargs,flags", [({"tokens_in": 1e308}, "--tokens-in × --price-in"),
                                          ({"instances": 10**306, "tokens_in": 1e10}, "--instances × the unit cost"),
                                          ({"cost_per_run": 1e308, "models": 10**10}, "--run-cost")])
def test_cost_table_refuses_a_cost_that_overflows(kwargs, flags):
    """issue 19: `cost --tokens-in 1e308` wrote `inf` into table3_cost.csv."""
    from zebra.cost import CostError

    args = {"instances": 64_000, "tokens_in": 6000, "tokens_out": 1200, "price": Price(30, 60), "models": 16,
            "benchmarks": 6, "cost_per_run": 0.0}
    args.update({k: v for k, v in kwargs.items() if k in args})
    with pytest.raises(CostError, match=flags.replace("×", ".")):
        cost_table(**args)


# ----------------------------------------------------------------------------- the script


def _analyze(monkeypatch, *argv):
    """Run analyze.py's main() in this process (no interpreter start-up, imports shared)."""
    monkeypatch.syspath_prepend(str(ROOT))
    import analyze

    monkeypatch.setattr(sys, "argv", ["analyze.py", *argv])
    analyze.main()


def test_script_writes_figures_and_numbers(tmp_path, monkeypatch):
    out = tmp_path / "an"
    _analyze(monkeypatch, "dendrogram", "radar", "--output-dir", str(out), "--behaviour-table", str(BENCH))
    clusters = json.loads((out / "fig11_clusters.json").read_text())
    assert clusters["groups"]["instruction-following"]["clusters"][0] == ["gpt-4", "gpt-3.5-turbo", "bard"]
    assert (out / "fig11_dendrograms.png").stat().st_size > 10_000 and (out / "fig4_radar.png").is_file()
    assert pd.read_csv(out / "fig11_clusters.csv").groupby("group")["cluster"].max().to_dict() == {
        "instruction-following": 3, "knowledge": 3, "reasoning": 4}
    summary = json.loads((out / "summary_dendrogram-radar.json").read_text())
    assert summary["settings"]["cut"] == 0.4 and "fig11_clusters.csv" in summary["files"]
    with pytest.raises(SystemExit, match="GSM8K"):
        _analyze(monkeypatch, "dendrogram", "--group", "x=GSM8K", "--output-dir", str(out), "--behaviour-table", str(BENCH))


def test_each_invocation_keeps_its_own_summary(tmp_path, monkeypatch):
    """`analyze.py cost` after `analyze.py all` (here: after `table`) used to replace its summary.json."""
    out = tmp_path / "an"
    _analyze(monkeypatch, "table", "--output-dir", str(out), "--behaviour-table", str(BENCH))
    first = (out / "summary_table.json").read_bytes()
    _analyze(monkeypatch, "cost", "--instances", "1000", "--output", str(out), "--benchmark", str(BENCH))  # the old names
    assert (out / "summary_table.json").read_bytes() == first
    assert json.loads(first)["analyses"] == ["table"]
    cost = json.loads((out / "summary_cost.json").read_text())
    assert cost["analyses"] == ["cost"] and cost["settings"]["instances"] == 1000
    assert not (out / "summary.json").exists()
    import analyze

    assert analyze.summary_name(["all"]) == "summary_all.json"
    assert analyze.summary_name(["behaviour", "cost", "behaviour"]) == "summary_behaviour-cost.json"


@pytest.mark.slow
def test_all_on_the_shipped_pool(tmp_path):
    out = tmp_path / "all"
    done = subprocess.run([sys.executable, str(ROOT / "analyze.py"), "all", "--output", str(out), "--n-boot", "200"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    for name in ("fig10_table.png", "fig4_radar.png", "fig6_pca.png", "fig11_dendrograms.png", "fig8_frequency.png",
                 "kinship_rank.png", "tfidf.png", "agreement.png", "table3_cost.csv", "agreement_by_pair.csv",
                 "summary_all.json"):
        assert (out / name).is_file(), name
    freq = pd.read_csv(out / "fig8_frequency.csv")
    sup = json.loads((out / "binarized" / "sup.json").read_text())
    counts = Counter(r["most_similar_pair"][0] for r in sup)
    assert dict(freq[freq["strategy"] == "SUP"].query("chosen > 0")[["model", "chosen"]].values) == counts
    agreement = pd.read_csv(out / "agreement.csv").set_index(["strategy", "label"])
    # the baseline's chosen has the highest overall_score by construction
    assert agreement.loc[("Baseline", "overall_score"), "disagree"] == 0


def test_binarized_folder_with_several_draws_is_refused(tmp_path, monkeypatch):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "sup.json").write_text(json.dumps([_record("p", "gpt-4", "bard")]))
    with pytest.raises(SystemExit, match="holds one draw; give one --models-per-prompt"):
        _analyze(monkeypatch, "agreement", "--models-per-prompt", "4", "all", "--binarized", str(tmp_path / "bin"),
                 "--output", str(tmp_path / "o"))
    assert not (tmp_path / "o").exists()
    with pytest.raises(SystemExit, match="'1' must be an integer >= 2 or 'all'"):
        _analyze(monkeypatch, "agreement", "--models-per-prompt", "1", "--output", str(tmp_path / "o"))


def test_analysis_json_never_holds_bare_nan(tmp_path):
    """NaN is not JSON (issue 14): an undefined number in an analysis summary is written as null."""
    import argparse

    import analyze

    run = analyze.Run.__new__(analyze.Run)
    run.args, run.out, run.stage, run.written = argparse.Namespace(figures_only=False), tmp_path, tmp_path, []
    run.save_json({"gap": float("nan"), "ci": [np.float64("inf"), 0.5], "n": np.int64(3)}, "s.json")
    text = (tmp_path / "s.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"gap": None, "ci": [None, 0.5], "n": 3}
