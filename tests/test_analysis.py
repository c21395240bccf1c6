"""The analyses' numbers: PCA and clusters on the shipped table, TF–IDF on pairs with a known
answer, agreement and frequency counts on hand-made records, Table 3's arithmetic."""

import json
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import datasets
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


# ----------------------------------------------------------------------------- agreement


def _completion(model, text, overall, ratings):
    return {"model": model, "response": text, "overall_score": overall,
            "annotations": {a: {"Rating": r, "Rationale": "x"} for a, r in zip(A.ASPECTS, ratings)}}


@pytest.fixture(scope="module")
def labelled():
    rows = [
        # p1: gpt-4 better overall and on every aspect
        {"instruction": "p1", "completions": [_completion("gpt-4", "g1", 9.0, "5555"), _completion("bard", "b1", 6.0, "3333")]},
        # p2: overall tie; helpfulness and instruction_following tie, gpt-4 better on honesty; gpt-4's truthfulness N/A
        {"instruction": "p2", "completions": [_completion("bard", "b2", 7.0, "4243"),
                                              _completion("gpt-4", "g2", 7.0, ["4", "4", "4", "N/A"])]},
        # p3 twice (UltraFeedback repeats instructions): the record's text lengths pick the second row
        {"instruction": "p3", "completions": [_completion("gpt-4", "short", 1.0, "1111"), _completion("bard", "x", 9.0, "5555")]},
        {"instruction": "p3", "completions": [_completion("gpt-4", "longer text", 8.0, "4444"), _completion("bard", "yy", 2.0, "2222")]},
    ]
    return A.ratings_frame(datasets.Dataset.from_list(rows))


def test_ratings_frame_reads_na_and_mean_rating(labelled):
    assert len(labelled) == 8
    g2 = labelled[(labelled["prompt_id"] == prompt_id("p2")) & (labelled["model"] == "gpt-4")].iloc[0]
    assert math.isnan(g2["truthfulness"]) and g2["mean_rating"] == pytest.approx(4.0) and g2["overall_score"] == 7.0


def test_agreement_counts_on_a_hand_made_set(labelled):
    recs = [
        _record("p1", "gpt-4", "bard", "g1", "b1"),
        _record("p2", "gpt-4", "bard", "g2", "b2"),
        _record("p3", "gpt-4", "bard", "longer text", "yy"),
        _record("p4-not-in-data", "gpt-4", "bard"),
    ]
    out = A.agreement_outcomes(A.pairs_frame(recs), labelled)
    assert out["overall_score"].tolist() == ["agree", "tie", "agree", "missing"]
    assert out["honesty"].tolist() == ["agree", "agree", "agree", "missing"]  # p2: 4 vs 2
    assert out["helpfulness"].tolist() == out["instruction_following"].tolist() == ["agree", "tie", "agree", "missing"]
    assert out["truthfulness"].tolist() == ["agree", "missing", "agree", "missing"]
    assert out["mean_rating"].tolist() == ["agree", "agree", "agree", "missing"]  # p2: 4.0 vs 3.25
    no_id = _record("p1", "gpt-4", "bard", "g1", "b1")
    del no_id["prompt_id"]  # the original project's records: the id comes from the prompt
    assert A.agreement_outcomes(A.pairs_frame([no_id]), labelled)["overall_score"].tolist() == ["agree"]
    # the same pair the other way round: every decided outcome flips, ties and missing stay
    flipped = A.agreement_outcomes(A.pairs_frame([_record("p1", "bard", "gpt-4", "b1", "g1"),
                                                  _record("p2", "bard", "gpt-4", "b2", "g2")]), labelled)
    assert flipped["overall_score"].tolist() == ["disagree", "tie"]

    summary = A.agreement_summary({"ZEBRA": out, "Flip": flipped}).set_index(["strategy", "label"])
    row = summary.loc[("ZEBRA", "overall_score")]
    assert (row["records"], row["agree"], row["disagree"], row["tie"], row["missing"]) == (4, 2, 0, 1, 1)
    assert row["agreement"] == 1.0 and row["agree_all"] == pytest.approx(2 / 3)
    assert summary.loc[("Flip", "overall_score"), "agreement"] == 0.0
    assert summary.index.get_level_values(0).unique().tolist() == ["ZEBRA", "Flip"]
    by_pair = A.agreement_summary({"ZEBRA": out}, by_pair=True)
    assert set(zip(by_pair["chosen_model"], by_pair["rejected_model"])) == {("gpt-4", "bard")}


def test_wilson_interval_matches_scipy():
    from scipy.stats import binomtest

    lo, hi = A.wilson_interval(8, 10)
    ci = binomtest(8, 10).proportion_ci(method="wilson")
    assert (float(lo), float(hi)) == pytest.approx((ci.low, ci.high), abs=1e-5)
    assert float(A.wilson_interval(0, 5)[0]) == 0.0 and math.isnan(float(A.wilson_interval(0, 0)[0]))


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


# ----------------------------------------------------------------------------- the script


def _analyze(monkeypatch, *argv):
    """Run analyze.py's main() in this process (no interpreter start-up, imports shared)."""
    monkeypatch.syspath_prepend(str(ROOT))
    import analyze

    monkeypatch.setattr(sys, "argv", ["analyze.py", *argv])
    analyze.main()


def test_script_writes_figures_and_numbers(tmp_path, monkeypatch):
    out = tmp_path / "an"
    _analyze(monkeypatch, "dendrogram", "radar", "--output", str(out), "--benchmark", str(BENCH))
    clusters = json.loads((out / "fig11_clusters.json").read_text())
    assert clusters["groups"]["instruction-following"]["clusters"][0] == ["gpt-4", "gpt-3.5-turbo", "bard"]
    assert (out / "fig11_dendrograms.png").stat().st_size > 10_000 and (out / "fig4_radar.png").is_file()
    assert pd.read_csv(out / "fig11_clusters.csv").groupby("group")["cluster"].max().to_dict() == {
        "instruction-following": 3, "knowledge": 3, "reasoning": 4}
    summary = json.loads((out / "summary_dendrogram-radar.json").read_text())
    assert summary["settings"]["cut"] == 0.4 and "fig11_clusters.csv" in summary["files"]
    with pytest.raises(SystemExit, match="GSM8K"):
        _analyze(monkeypatch, "dendrogram", "--group", "x=GSM8K", "--output", str(out), "--benchmark", str(BENCH))


def test_each_invocation_keeps_its_own_summary(tmp_path, monkeypatch):
    """`analyze.py cost` after `analyze.py all` (here: after `table`) used to replace its summary.json."""
    out = tmp_path / "an"
    _analyze(monkeypatch, "table", "--output-dir", str(out), "--benchmark", str(BENCH))
    first = (out / "summary_table.json").read_bytes()
    _analyze(monkeypatch, "cost", "--instances", "1000", "--output", str(out), "--benchmark", str(BENCH))  # the old name
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


def test_ratings_frame_on_empty_annotations(tmp_path):
    """Responses converted to the UltraFeedback schema with `annotations: {}` load as an Arrow JSON
    type, not a struct: overall_score still counts, the four aspects are missing (issue 12)."""
    from zebra.data import iter_batches, load_ultrafeedback, to_batch

    path = tmp_path / "uf.jsonl"
    path.write_text(json.dumps({"instruction": "p", "completions": [
        {"model": "gpt-4", "response": "a", "annotations": {}, "overall_score": 8},
        {"model": "alpaca-7b", "response": "b", "annotations": {}, "overall_score": 3}]}) + "\n")
    ds = load_ultrafeedback(path)
    frame = A.ratings_frame(ds)
    assert frame["overall_score"].tolist() == [8.0, 3.0] and frame["helpfulness"].isna().all()
    batch = to_batch(next(iter_batches(ds)))
    assert np.isnan(batch.ratings()).all() and not batch.has_ratings()  # the binarize run refuses: test_pipeline


# ----------------------------------------------------------------------------- the agreement study


def test_agreement_study_counts_decided_pairs_and_gaps():
    ratings = pd.DataFrame({"prompt_id": [prompt_id(p) for p in ["p1", "p1", "p2", "p2", "p3", "p3", "p4"]],
                            "model": ["gpt-4", "bard", "gpt-4", "bard", "gpt-4", "bard", "gpt-4"],
                            "length": -1, **{lab: np.nan for lab in A.LABELS}})
    ratings["overall_score"] = [2.0, 1.0, 1.0, 1.0, 1.2, 1.9, 2.0]  # p1 agree, p2 tie, p3 disagree, p4 missing
    recs = [_record(p, "gpt-4", "bard") for p in ("p1", "p2", "p3", "p4")]
    study = A.agreement_study({"S": A.pairs_frame(recs)}, ratings, n_boot=200).iloc[0]
    assert (study["records"], study["labelled"], study["decided"], study["agree"], study["disagree"],
            study["tie"], study["missing"]) == (4, 3, 2, 1, 1, 1, 1)
    assert study["agreement"] == 0.5 and 0.0 <= study["ci_low"] <= 0.5 <= study["ci_high"] <= 1.0
    gapped = A.agreement_study({"S": A.pairs_frame(recs)}, ratings, min_gap=0.75, n_boot=200).iloc[0]
    assert (gapped["decided"], gapped["agree"], gapped["tie"]) == (1, 1, 2)  # p3's gap 0.7 no longer decides
    with pytest.raises(A.AnalysisError, match="--min-gap"):
        A.agreement_study({"S": A.pairs_frame(recs)}, ratings, min_gap=float("nan"))


def test_random_floor_pairs_are_rated_drawn_and_oriented_by_mb_sup(table):
    from zebra.pools import PoolOptions, load_pool

    ds = load_pool(ROOT / "data" / "alpaca_eval", PoolOptions()).dataset
    pairs = A.random_pairs(ds, table, seed=3)
    assert len(pairs) == len(ds) == 403
    sup = dict(zip(table.models, table.mb_sup))
    assert all(sup[c] >= sup[r] for c, r in zip(pairs["chosen_model"], pairs["rejected_model"]))
    assert (pairs["chosen_model"] != pairs["rejected_model"]).all()
    assert pairs[["chosen_model", "rejected_model"]].drop_duplicates().shape[0] > 20  # random, not one fixed pair
    again = A.random_pairs(ds, table, seed=3, batch_size=7)  # the draw does not depend on batching
    assert again[["chosen_model", "rejected_model"]].equals(pairs[["chosen_model", "rejected_model"]])
    assert not A.random_pairs(ds, table, seed=4)["chosen_model"].equals(pairs["chosen_model"])


@pytest.mark.slow
def test_agreement_study_on_the_shipped_pool(tmp_path, monkeypatch):
    out = tmp_path / "study"
    _analyze(monkeypatch, "agreement", "--judged-only", "--models-per-prompt", "4", "all", "--limit", "60",
             "--n-boot", "200", "--output", str(out))
    study = pd.read_csv(out / "agreement_study.csv")
    assert set(study["models_per_prompt"].astype(str)) == {"4", "all"}
    base = study[study["strategy"] == "Baseline (judge-labelled)"]
    assert (base["agreement"] == 1.0).all() and (base["disagree"] == 0).all()  # chosen by the judge's own label
    assert (study["records"] <= 60).all() and (study["missing"] == 0).all()  # --judged-only: every side has a label
    assert (out / "agreement_study.png").stat().st_size > 5_000


def test_binarized_folder_with_several_draws_is_refused(tmp_path, monkeypatch):
    with pytest.raises(SystemExit, match="holds one draw; give one --models-per-prompt"):
        _analyze(monkeypatch, "agreement", "--models-per-prompt", "4", "all", "--binarized", str(tmp_path),
                 "--output", str(tmp_path / "o"))
    with pytest.raises(SystemExit, match="'1' must be an integer >= 2 or 'all'"):
        _analyze(monkeypatch, "agreement", "--models-per-prompt", "1", "--output", str(tmp_path / "o"))


def test_analysis_json_never_holds_bare_nan(tmp_path):
    """NaN is not JSON (issue 14): an undefined number in an analysis summary is written as null."""
    import argparse

    import analyze

    run = analyze.Run.__new__(analyze.Run)
    run.args, run.out, run.written = argparse.Namespace(figures_only=False), tmp_path, []
    run.save_json({"gap": float("nan"), "ci": [np.float64("inf"), 0.5], "n": np.int64(3)}, "s.json")
    text = (tmp_path / "s.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"gap": None, "ci": [None, 0.5], "n": 3}
    assert not list(tmp_path.glob(".s.json*"))  # written through a temporary file
