"""Agreement with a judge (zebra.agreement, zebra.length_control): outcomes and counts on hand-made
labels, each cheap rule on hand-built pairs, the one interval method, McNemar against statsmodels,
the length-control GLM's recovery of planted effects, the calibration and minimum-gap tables."""

import json
import logging
import math
import sys
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest

from zebra import agreement as G
from zebra.analysis import AnalysisError, bootstrap_ci, pairs_frame
from zebra.behaviour import read_benchmark
from zebra.data import prompt_id
from zebra.length_control import GAP, LENGTH, fit_length_control, length_controlled

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "model_aware" / "benchmark.csv"


@pytest.fixture(scope="module")
def table():
    return read_benchmark(BENCH)


def _msg(prompt, text):
    return [{"content": prompt, "role": "user"}, {"content": text, "role": "assistant"}]


def _record(prompt, chosen, rejected, c_text="a", r_text="b", rank=1):
    return {"prompt": prompt, "prompt_id": prompt_id(prompt), "most_similar_pair": [chosen, rejected],
            "chosen": _msg(prompt, c_text), "rejected": _msg(prompt, r_text), "kinship_rank": rank}


def _completion(model, text, overall, ratings):
    return {"model": model, "response": text, "overall_score": overall,
            "annotations": {a: {"Rating": r, "Rationale": "x"} for a, r in zip(G.ASPECTS, ratings)}}


# ----------------------------------------------------------------------------- outcomes and counts


@pytest.fixture(scope="module")
def labelled():
    rows = [
        # p1: gpt-4 better overall and on every aspect
        {"instruction": "p1", "source": "koala",
         "completions": [_completion("gpt-4", "g1", 9.0, "5555"), _completion("bard", "b1", 6.0, "3333")]},
        # p2: overall tie; helpfulness and instruction_following tie, gpt-4 better on honesty; gpt-4's truthfulness N/A
        {"instruction": "p2", "source": "oasst", "completions": [_completion("bard", "b2", 7.0, "4243"),
                                                                 _completion("gpt-4", "g2", 7.0, ["4", "4", "4", "N/A"])]},
        # p3 twice (UltraFeedback repeats instructions): the record's text lengths pick the second row
        {"instruction": "p3", "source": "koala",
         "completions": [_completion("gpt-4", "short", 1.0, "1111"), _completion("bard", "x", 9.0, "5555")]},
        {"instruction": "p3", "source": "koala",
         "completions": [_completion("gpt-4", "longer text", 8.0, "4444"), _completion("bard", "yy", 2.0, "2222")]},
    ]
    return G.ratings_frame(datasets.Dataset.from_list(rows))


def test_ratings_frame_reads_na_mean_rating_and_source(labelled):
    assert len(labelled) == 8
    g2 = labelled[(labelled["prompt_id"] == prompt_id("p2")) & (labelled["model"] == "gpt-4")].iloc[0]
    assert math.isnan(g2["truthfulness"]) and g2["mean_rating"] == pytest.approx(4.0) and g2["overall_score"] == 7.0
    assert g2["source"] == "oasst"


def test_agreement_counts_on_a_hand_made_set(labelled):
    recs = [
        _record("p1", "gpt-4", "bard", "g1", "b1"),
        _record("p2", "gpt-4", "bard", "g2", "b2"),
        _record("p3", "gpt-4", "bard", "longer text", "yy"),
        _record("p4-not-in-data", "gpt-4", "bard"),
    ]
    out = G.agreement_outcomes(pairs_frame(recs), labelled)
    assert out["overall_score"].tolist() == ["agree", "tie", "agree", "missing"]
    assert out["honesty"].tolist() == ["agree", "agree", "agree", "missing"]  # p2: 4 vs 2
    assert out["helpfulness"].tolist() == out["instruction_following"].tolist() == ["agree", "tie", "agree", "missing"]
    assert out["truthfulness"].tolist() == ["agree", "missing", "agree", "missing"]
    assert out["mean_rating"].tolist() == ["agree", "agree", "agree", "missing"]  # p2: 4.0 vs 3.25
    assert out["not_found"].tolist() == [False, False, False, True]
    no_id = _record("p1", "gpt-4", "bard", "g1", "b1")
    del no_id["prompt_id"]  # the original project's records: the id comes from the prompt
    assert G.agreement_outcomes(pairs_frame([no_id]), labelled)["overall_score"].tolist() == ["agree"]
    # the same pair the other way round: every decided outcome flips, ties and missing stay
    flipped = G.agreement_outcomes(pairs_frame([_record("p1", "bard", "gpt-4", "b1", "g1"),
                                                _record("p2", "bard", "gpt-4", "b2", "g2")]), labelled)
    assert flipped["overall_score"].tolist() == ["disagree", "tie"]

    summary = G.agreement_summary({"ZEBRA": out, "Flip": flipped}, n_boot=200).set_index(["strategy", "label"])
    row = summary.loc[("ZEBRA", "overall_score")]
    assert (row["records"], row["agree"], row["disagree"], row["tie"], row["missing"]) == (4, 2, 0, 1, 1)
    assert row["agreement"] == 1.0 and row["agree_all"] == pytest.approx(2 / 3)
    assert summary.loc[("Flip", "overall_score"), "agreement"] == 0.0
    assert summary.index.get_level_values(0).unique().tolist() == ["ZEBRA", "Flip"]
    by_pair = G.agreement_summary({"ZEBRA": out}, by_pair=True, n_boot=200)
    assert set(zip(by_pair["chosen_model"], by_pair["rejected_model"])) == {("gpt-4", "bard")}


def test_labels_nobody_has_are_left_out_of_the_summary():
    """issue 24: the shipped pool has overall_score only; five empty label groups filled agreement.png."""
    out = pd.DataFrame({"prompt_id": ["a", "b"], "chosen_model": "x", "rejected_model": "y",
                        **{lab: ["missing", "missing"] for lab in G.LABELS}, "not_found": False})
    out["overall_score"] = ["agree", "disagree"]
    assert G.agreement_summary({"S": out}, n_boot=50)["label"].tolist() == ["overall_score"]


def test_label_gaps_tell_an_unlabelled_response_from_one_not_in_the_data(labelled):
    recs = [_record("p1", "gpt-4", "bard", "g1", "b1"), _record("p1", "gpt-4", "starchat", "g1", "s"),
            _record("p9", "gpt-4", "bard")]
    ratings = labelled.copy()
    extra = ratings.iloc[[0]].assign(model="starchat", overall_score=np.nan)  # in the data, never judged
    gaps = G.label_gaps(G.agreement_outcomes(pairs_frame(recs), pd.concat([ratings, extra])))
    assert gaps == {"records": 3, "missing": 2, "not_found": 1, "unlabelled": 1}


def test_report_says_the_judge_did_not_label_a_model_instead_of_blaming_the_data(labelled, caplog, monkeypatch):
    """issue 24: `analyze.py all` warned 'were they binarized from it?' about its own binarize outputs;
    the real cause (the judge labelled 8 of the pool's 12 models) is one INFO line."""
    monkeypatch.syspath_prepend(str(ROOT))
    import analyze

    recs = [_record("p1", "gpt-4", "bard", "g1", "b1"), _record("p1", "gpt-4", "starchat", "g1", "s")]
    ratings = pd.concat([labelled, labelled.iloc[[0]].assign(model="starchat", overall_score=np.nan)])
    outcomes = {"SIM-least": G.agreement_outcomes(pairs_frame(recs), ratings)}
    run = type("R", (), {"args": type("A", (), {"data": "data/alpaca_eval"})()})()
    with caplog.at_level(logging.INFO, logger="analyze"):
        analyze.report_label_gaps(run, outcomes, ratings)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "SIM-least 1 of 2" in caplog.text and "the judge labelled 2 of --data's 3 models" in caplog.text
    caplog.clear()
    outcomes = {"SUP": G.agreement_outcomes(pairs_frame([_record("elsewhere", "gpt-4", "bard")]), ratings)}
    with caplog.at_level(logging.INFO, logger="analyze"):
        analyze.report_label_gaps(run, outcomes, ratings)
    assert [r.levelno for r in caplog.records] == [logging.WARNING] and "does not hold" in caplog.text


def test_ratings_frame_on_empty_annotations(tmp_path):
    """Responses converted to the UltraFeedback schema with `annotations: {}` load as an Arrow JSON
    type, not a struct: overall_score still counts, the four aspects are missing (issue 12)."""
    from zebra.data import iter_batches, load_ultrafeedback, to_batch

    path = tmp_path / "uf.jsonl"
    path.write_text(json.dumps({"instruction": "p", "completions": [
        {"model": "gpt-4", "response": "a", "annotations": {}, "overall_score": 8},
        {"model": "alpaca-7b", "response": "b", "annotations": {}, "overall_score": 3}]}) + "\n")
    ds = load_ultrafeedback(path)
    frame = G.ratings_frame(ds)
    assert frame["overall_score"].tolist() == [8.0, 3.0] and frame["helpfulness"].isna().all()
    batch = to_batch(next(iter_batches(ds)))
    assert np.isnan(batch.ratings()).all() and not batch.has_ratings()  # the binarize run refuses: test_pipeline


def test_agreement_study_counts_decided_pairs_and_gaps():
    ratings = pd.DataFrame({"prompt_id": [prompt_id(p) for p in ["p1", "p1", "p2", "p2", "p3", "p3", "p4"]],
                            "model": ["gpt-4", "bard", "gpt-4", "bard", "gpt-4", "bard", "gpt-4"],
                            "length": -1, "source": None, **{lab: np.nan for lab in G.LABELS}})
    ratings["overall_score"] = [2.0, 1.0, 1.0, 1.0, 1.2, 1.9, 2.0]  # p1 agree, p2 tie, p3 disagree, p4 missing
    recs = [_record(p, "gpt-4", "bard") for p in ("p1", "p2", "p3", "p4")]
    study = G.agreement_study({"S": pairs_frame(recs)}, ratings, n_boot=200).iloc[0]
    assert (study["records"], study["labelled"], study["decided"], study["agree"], study["disagree"],
            study["tie"], study["missing"]) == (4, 3, 2, 1, 1, 1, 1)
    assert study["agreement"] == 0.5 and 0.0 <= study["ci_low"] <= 0.5 <= study["ci_high"] <= 1.0
    gapped = G.agreement_study({"S": pairs_frame(recs)}, ratings, min_gap=0.75, n_boot=200).iloc[0]
    assert (gapped["decided"], gapped["agree"], gapped["tie"]) == (1, 1, 2)  # p3's gap 0.7 no longer decides
    with pytest.raises(AnalysisError, match="--min-gap"):
        G.agreement_study({"S": pairs_frame(recs)}, ratings, min_gap=float("nan"))


# ----------------------------------------------------------------------------- one interval method


def _outcomes(n_agree, n_disagree, n_tie, start=0):
    ps = [f"p{i}" for i in range(start, start + n_agree + n_disagree + n_tie)]
    labels = ["agree"] * n_agree + ["disagree"] * n_disagree + ["tie"] * n_tie
    out = pd.DataFrame({"prompt_id": [prompt_id(p) for p in ps], "chosen_model": "gpt-4", "rejected_model": "bard",
                        **{lab: "missing" for lab in G.LABELS}, "not_found": False})
    out["overall_score"] = labels
    return out, ps, labels


def test_equal_counts_get_one_interval_in_every_table():
    """issue 24: 57 of 68 was 0.733–0.907 in agreement.csv (Wilson) and 0.75–0.926 in
    agreement_study.csv (bootstrap). Now one method, and the order of the records does not matter."""
    out, ps, labels = _outcomes(57, 11, 12)
    summary = G.agreement_summary({"S": out}).iloc[0]
    ratings = pd.DataFrame({"prompt_id": [prompt_id(p) for p in ps for _ in (0, 1)], "model": ["gpt-4", "bard"] * len(ps),
                            "length": -1, "source": None, **{lab: np.nan for lab in G.LABELS}})
    ratings["overall_score"] = [v for o in labels for v in {"agree": (2, 1), "disagree": (1, 2), "tie": (1, 1)}[o]]
    recs = [_record(p, "gpt-4", "bard") for p in ps]
    study = G.agreement_study({"S": pairs_frame(recs)}, ratings).iloc[0]
    shuffled = G.agreement_study({"S": pairs_frame(recs[::-1][5:] + recs[::-1][:5])}, ratings).iloc[0]
    assert (summary["agree"], summary["agree"] + summary["disagree"]) == (57, 68)
    assert summary["agreement"] == study["agreement"] == pytest.approx(57 / 68)
    assert (summary["ci_low"], summary["ci_high"]) == (study["ci_low"], study["ci_high"]) == (shuffled["ci_low"], shuffled["ci_high"])
    other, _, _ = _outcomes(57, 11, 0, start=500)  # other prompts, same counts: same interval
    assert tuple(G.agreement_summary({"S": other}).iloc[0][["ci_low", "ci_high"]]) == (summary["ci_low"], summary["ci_high"])


def test_bootstrap_ci_resamples_prompts_not_pairs():
    rng = np.random.default_rng(1)
    per_prompt = rng.random(200) < 0.7
    values = np.repeat(per_prompt, 5).astype(float)  # five pairs per prompt, all with the prompt's outcome
    groups = np.repeat(np.arange(200), 5)
    _, lo_g, hi_g = bootstrap_ci(values, 2000, 0, groups=groups)
    _, lo_i, hi_i = bootstrap_ci(values, 2000, 0)
    _, lo_p, hi_p = bootstrap_ci(per_prompt.astype(float), 2000, 0)
    # by prompt: as wide as 200 independent outcomes, not as narrow as 1,000
    assert (hi_g - lo_g) == pytest.approx(hi_p - lo_p, rel=0.1)
    assert (hi_g - lo_g) / (hi_i - lo_i) == pytest.approx(math.sqrt(5), rel=0.2)
    # a ratio of sums: agree / decided with weights
    est, lo, hi = bootstrap_ci([1, 0, 1, 1], 500, 0, weights=[1, 1, 1, 1])
    assert est == 0.75 and lo <= est <= hi
    perm = rng.permutation(values.size)  # the order of a file changes nothing
    assert bootstrap_ci(values[perm], 500, 3, groups=groups[perm]) == bootstrap_ci(values, 500, 3, groups=groups)
    assert all(math.isnan(v) for v in bootstrap_ci([], 100, 0))


# ----------------------------------------------------------------------------- cheap rules


def _judged(rows):
    """Hand-built judged pairs: (prompt, chosen model, rejected model, chosen text, rejected text, outcome)."""
    frame = pd.DataFrame(rows, columns=["prompt", "chosen_model", "rejected_model", "chosen_text", "rejected_text", "outcome"])
    frame["prompt_id"] = [prompt_id(p) for p in frame["prompt"]]
    frame["kinship_rank"] = np.nan
    frame["source"] = "koala"
    frame["judge_chosen"] = np.where(frame["outcome"] == "agree", 2.0, 1.0)
    frame["judge_rejected"] = np.where(frame["outcome"] == "disagree", 2.0, 1.0)
    return frame


SIZES = {"llama-2-70b-chat": 70.0, "llama-2-7b-chat": 7.0, "alpaca-7b": 7.0, "gpt-4": float("nan")}


def _words(texts):  # a stand-in tokenizer whose counts disagree with characters
    return np.array([len(t.split()) for t in texts])


def test_each_rule_on_hand_built_pairs(table):
    j = G.pair_features(_judged([
        # chosen longer in characters, shorter in words; bigger model chosen; the judge agrees
        ("p1", "llama-2-70b-chat", "llama-2-7b-chat", "aaaaaaaaaaaaaaaa", "b b b b", "agree"),
        # chosen shorter; smaller model chosen; the judge disagrees (it preferred the longer, bigger one)
        ("p2", "llama-2-7b-chat", "llama-2-70b-chat", "short", "much longer answer", "disagree"),
        # equal lengths and equal sizes: both rules tie; the judge agrees
        ("p3", "llama-2-7b-chat", "alpaca-7b", "same", "size", "agree"),
        # a model of unpublished size: the bigger-model rule does not apply
        ("p4", "gpt-4", "alpaca-7b", "x" * 30, "y" * 10, "agree"),
    ]), table, SIZES, _words)
    sides = G.rule_sides(j, coin_seed=0)
    assert sides["longer (characters)"].tolist() == [1, -1, 0, 1]
    assert sides["longer (tokens)"].tolist() == [-1, -1, 0, 0]
    assert sides["shorter (characters)"].tolist() == [-1, 1, 0, -1]
    assert sides["bigger model"][:3].tolist() == [1, -1, 0] and math.isnan(sides["bigger model"][3])
    assert set(sides["coin (seeded draw)"]) <= {-1.0, 1.0}
    rules = G.rule_table(j, "S", n_boot=100, seed=0, coin_seed=0).set_index("rule")
    assert rules.loc["strategy", ["decided", "agree"]].tolist() == [4, 3]
    assert rules.loc["longer (characters)", ["rule_picks", "rule_ties", "agree"]].tolist() == [3, 1, 3]
    assert rules.loc["longer (characters)", "agreement"] == 1.0
    assert rules.loc["shorter (characters)", "agreement"] == 0.0
    assert rules.loc["longer (tokens)", ["rule_picks", "rule_ties", "agree"]].tolist() == [2, 2, 1]
    assert rules.loc["bigger model", ["rule_picks", "rule_ties", "not_applicable", "agree"]].tolist() == [2, 1, 1, 2]
    assert rules.loc["coin (expected)", "agreement"] == 0.5
    # MB-SUP gap and MB-SIM come from the table by model name
    i, k = table.index["llama-2-70b-chat"], table.index["llama-2-7b-chat"]
    assert j.loc[0, "mb_sup_gap"] == pytest.approx(table.mb_sup[i] - table.mb_sup[k])
    assert j.loc[0, "mb_sim"] == pytest.approx(table.mb_sim[i, k])


def test_the_coin_is_fair_seeded_and_order_free():
    rows = [(f"p{i}", "gpt-4", "bard", "a", "b", "agree") for i in range(2000)]
    j = _judged(rows)
    coin = G.coin_sides(j, seed=7)
    assert abs(coin.mean()) < 0.06  # fair: ±1 with equal chance (2,000 draws, |mean| < 2.7 sd)
    assert (G.coin_sides(j.iloc[::-1], seed=7) == coin[::-1]).all()  # the rows' order does not matter
    swapped = j.rename(columns={"chosen_model": "rejected_model", "rejected_model": "chosen_model"})
    assert (G.coin_sides(swapped, seed=7) == -coin).all()  # the same pair, sides swapped: the coin's pick follows
    assert (G.coin_sides(j, seed=8) != coin).any()


@pytest.mark.parametrize("b,c", [(0, 0), (3, 0), (0, 7), (5, 5), (21, 17), (25, 55), (76, 0), (1, 30)])
def test_mcnemar_exact_matches_statsmodels(b, c):
    from statsmodels.stats.contingency_tables import mcnemar

    first = np.r_[np.ones(b, bool), np.zeros(c, bool), np.ones(40, bool), np.zeros(9, bool)]
    second = np.r_[np.zeros(b, bool), np.ones(c, bool), np.ones(40, bool), np.zeros(9, bool)]
    ours = G.mcnemar_exact(first, second)
    ref = mcnemar([[40, b], [c, 9]], exact=True)
    assert (ours["b"], ours["c"]) == (b, c)
    assert ours["p"] == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-12)


def test_length_matched_and_the_minimum_gap_filter_at_their_boundaries():
    frame = pd.DataFrame({"chosen_chars": [100, 100, 79, 0], "rejected_chars": [80, 79, 100, 0]})
    assert G.length_matched(frame).tolist() == [True, False, False, True]  # |Δ| <= 20 % of the longer
    keep = G.keep_min_gap([0.9, 0.5, 0.6, np.nan], [0.8, 0.4, 0.6, 0.1], 0.1)
    assert keep.tolist() == [True, True, False, False]  # exactly the gap is kept (0.9-0.8 in floats: 0.1)
    assert G.keep_min_gap([0.3], [0.3], 0.0).tolist() == [True]  # 0 keeps every pair, the paper's behaviour
    with pytest.raises(AnalysisError, match="minimum MB-SUP gap"):
        G.keep_min_gap([1.0], [0.0], float("nan"))


def test_calibration_and_min_gap_tables_on_hand_built_pairs():
    # gap 0.05: the judge disagrees on 3 of 4 prompts; gap 0.3: agrees on 4 of 4; one tie
    rows = []
    for k in range(4):
        rows.append({"prompt_id": f"a{k}", "chosen_model": "m1", "rejected_model": "m2", "chosen_chars": 100,
                     "rejected_chars": 90, "judge_chosen": 2.0 if k == 0 else 1.0, "judge_rejected": 1.0 if k == 0 else 2.0,
                     "mb_sup_gap": 0.05, "mb_sim": 0.97})
        rows.append({"prompt_id": f"a{k}", "chosen_model": "m1", "rejected_model": "m3", "chosen_chars": 300,
                     "rejected_chars": 100, "judge_chosen": 2.0, "judge_rejected": 1.0, "mb_sup_gap": 0.3, "mb_sim": 0.82})
    rows.append({"prompt_id": "a9", "chosen_model": "m1", "rejected_model": "m3", "chosen_chars": 1, "rejected_chars": 1,
                 "judge_chosen": 1.0, "judge_rejected": 1.0, "mb_sup_gap": 0.3, "mb_sim": 0.82})
    every = pd.DataFrame(rows)
    cal = G.calibration(every, "mb_sup_gap", G.GAP_EDGES, n_boot=100, seed=0).set_index(["pairs", "bin_high"])
    low, high = cal.loc[("all", 0.05)], cal.loc[("all", 0.3)]
    assert (low["count"], low["decided"], low["agree"], low["agreement"]) == (4, 4, 1, 0.25)
    assert (high["count"], high["decided"], high["agree"], high["agreement"], high["model_pairs"]) == (5, 4, 4, 1.0, 1)
    matched = cal.loc[("length-matched", 0.05)]  # 100 vs 90 is within 20 %; 300 vs 100 is not
    assert matched["decided"] == 4 and ("length-matched", 0.3) in cal.index  # the 1-vs-1 tie is length-matched
    gaps = G.min_gap_table({"every pair": every}, [0.0, 0.1], n_boot=100, seed=0).set_index("min_gap")
    assert gaps.loc[0.0, ["kept", "decided", "agree"]].tolist() == [9, 8, 5]
    assert gaps.loc[0.1, ["kept", "decided", "agree", "agreement"]].tolist() == [5, 4, 4, 1.0]


# ----------------------------------------------------------------------------- length control


def _simulated(n_prompts=1500, slope=1.5, beta=(0.4, 1.2), gap_effect=0.0, seed=0):
    """Two strategies per prompt; A's chosen responses are longer on average than B's; the judge's
    agreement follows σ(slope·tanh(Δ/σ) + β_strategy + gap_effect·gap)."""
    rng = np.random.default_rng(seed)
    frames = []
    for s, (shift, b) in zip(("A", "B"), ((400.0, beta[0]), (-150.0, beta[1]))):
        delta = rng.normal(shift, 500.0, n_prompts)
        frames.append(pd.DataFrame({"strategy": s, "prompt_id": [f"p{i}" for i in range(n_prompts)], "delta": delta,
                                    "mb_sup_gap": rng.uniform(0, 0.6, n_prompts), "beta": b}))
    frame = pd.concat(frames, ignore_index=True)
    sigma = frame["delta"].std(ddof=0)
    logit = slope * np.tanh(frame["delta"] / sigma) + frame["beta"] + gap_effect * frame["mb_sup_gap"]
    agree = rng.random(len(frame)) < 1 / (1 + np.exp(-logit))
    frame["chosen_chars"] = 2000 + np.round(frame["delta"] / 2)
    frame["rejected_chars"] = frame["chosen_chars"] - frame["delta"]
    frame["outcome"] = np.where(agree, "agree", "disagree")
    return frame


def test_length_control_recovers_a_planted_length_and_strategy_effect():
    frame = _simulated()
    truth = {"A": 1 / (1 + math.exp(-0.4)), "B": 1 / (1 + math.exp(-1.2))}
    rows, glm = length_controlled(frame, ["A", "B"], n_boot=100, seed=0)
    fit = glm["length"]
    assert fit["coef"][LENGTH] == pytest.approx(1.5, abs=0.25)
    assert fit["coef"]["strategy[A]"] == pytest.approx(0.4, abs=0.2)
    assert fit["coef"]["strategy[B]"] == pytest.approx(1.2, abs=0.2)
    rows = rows.set_index("strategy")
    for s in ("A", "B"):
        assert rows.loc[s, "lc_agreement"] == pytest.approx(truth[s], abs=0.04)
        assert rows.loc[s, "lc_ci_low"] <= truth[s] <= rows.loc[s, "lc_ci_high"]
    # raw agreement is length-inflated for A (its chosen side is longer), deflated for B; control undoes it
    assert rows.loc["A", "raw_agreement"] - truth["A"] > 0.08 and truth["B"] - rows.loc["B", "raw_agreement"] > 0.03
    # with the MB-SUP gap term, a planted gap effect is recovered too
    gapped = fit_length_control(_simulated(gap_effect=2.0, beta=(0.0, 0.8), seed=1).assign(
        agree=lambda f: (f["outcome"] == "agree").astype(int)), ["A", "B"], gap_term=True)
    assert gapped.coef[GAP] == pytest.approx(2.0, abs=0.4) and gapped.coef[LENGTH] == pytest.approx(1.5, abs=0.25)


def test_length_control_declines_too_little_data():
    frame = _simulated(n_prompts=6)
    assert fit_length_control(frame.assign(agree=1), ["A", "B"]) is None  # one outcome only
    rows, glm = length_controlled(frame.iloc[:8], ["A", "B"], n_boot=10)
    assert glm["length"] is None and rows["lc_agreement"].isna().all()


# ----------------------------------------------------------------------------- parameter counts, tokens


def test_shipped_parameter_counts_cover_the_table_with_a_source_each(table):
    sizes = G.read_parameter_counts(ROOT / "model_aware" / "parameter_counts.csv")
    assert set(sizes) == set(table.models) | set(table.excluded)
    assert [m for m, v in sizes.items() if math.isnan(v)] == ["gpt-4", "gpt-3.5-turbo", "bard"]  # sizes not published
    assert sizes["llama-2-70b-chat"] == 70 and sizes["starchat"] == 15.5
    df = pd.read_csv(ROOT / "model_aware" / "parameter_counts.csv")
    assert df["source"].str.len().min() > 10


@pytest.mark.parametrize("text,message", [
    ("model,parameters_billions,source\na,7,x\na,8,y\n", "row 3: a repeated model name 'a'"),
    ("model,parameters_billions,source\na,seven,x\n", "row 2 (a): parameters_billions 'seven' is not a number"),
    ("model,parameters_billions,source\na,-7,x\n", "row 2 (a): parameters_billions must be a finite number > 0"),
    ("model,size\na,7\n", "needs the columns"),
])
def test_parameter_counts_errors_name_the_row(tmp_path, text, message):
    path = tmp_path / "p.csv"
    path.write_text(text)
    with pytest.raises(AnalysisError, match=message.replace("(", r"\(").replace(")", r"\)")):
        G.read_parameter_counts(path)


def test_smollm2_token_counter_loads_offline_and_counts():
    name, count = G.smollm2_token_counter()
    assert "SmolLM2-135M-Instruct" in name
    counts = count(["hello world", "", "hello world", "Tokenisation of a longer sentence, with punctuation."])
    assert counts[0] == counts[2] == 2 and counts[1] == 0 and counts[3] > 8


# ----------------------------------------------------------------------------- the study, end to end


def test_study_on_a_small_made_up_pool(table):
    """`study` on 60 prompts × 4 judged models whose labels follow MB-SUP on most prompts: the
    tables agree with each other (the strategy row of the rules is the study's agreement; the
    calibration's decided pairs add up to every pair's)."""
    rng = np.random.default_rng(0)
    models = ["gpt-4", "gpt-3.5-turbo", "llama-2-13b-chat", "alpaca-7b"]
    sup = {m: table.mb_sup[table.index[m]] for m in models}
    rows = []
    for i in range(60):
        comps = [{"model": m, "response": f"{m} answers {i} " + "word " * int(rng.integers(1, 40)),
                  "overall_score": float(sup[m] + rng.normal(0, 0.2) > 0.5)} for m in models]
        rows.append({"instruction": f"prompt {i}", "source": ["koala", "oasst"][i % 2], "completions": comps})
    ds = datasets.Dataset.from_list(rows)
    ratings = G.ratings_frame(ds)
    every = G.every_pair(ds, table)
    assert len(every) == 60 * 6
    pairs = {"SUP": pairs_frame([_record(f"prompt {i}", "gpt-4", "gpt-3.5-turbo",
                                         next(c["response"] for c in rows[i]["completions"] if c["model"] == "gpt-4"),
                                         next(c["response"] for c in rows[i]["completions"] if c["model"] == "gpt-3.5-turbo"))
                                 for i in range(60)]),
             G.FLOOR: G.random_pairs(ds, table, 42)}
    t = G.study(pairs, ratings, every, table, {"llama-2-13b-chat": 13.0, "alpaca-7b": 7.0}, None, n_boot=100, seed=0)
    s = t.strategies.set_index("strategy")
    r = t.rules.set_index(["strategy", "rule"])
    for strategy in ("SUP", G.FLOOR):
        assert s.loc[strategy, "agreement"] == r.loc[(strategy, "strategy"), "agreement"]
        assert s.loc[strategy, "longer_agreement"] == r.loc[(strategy, "longer (characters)"), "agreement"]
        assert s.loc[strategy, "records"] == 60
    cal = t.calibration[(t.calibration["variable"] == "mb_sup_gap") & (t.calibration["pairs"] == "all")]
    first = t.min_gap[(t.min_gap["pairs_from"] == G.EVERY_PAIR) & (t.min_gap["min_gap"] == 0.0)].iloc[0]
    assert cal["decided"].sum() == first["decided"] and cal["count"].sum() == 360
    assert set(t.by_source["source"]) == {"koala", "oasst"}
    assert "longer (tokens)" not in set(t.rules["rule"])  # no tokenizer given: no token rule
    assert t.model_pairs["decided"].sum() == first["decided"] and len(t.model_pairs) == 6


def test_random_floor_pairs_are_rated_drawn_and_oriented_by_mb_sup(table):
    from zebra.pools import PoolOptions, load_pool

    ds = load_pool(ROOT / "data" / "alpaca_eval", PoolOptions()).dataset
    pairs = G.random_pairs(ds, table, seed=3)
    assert len(pairs) == len(ds) == 403
    sup = dict(zip(table.models, table.mb_sup))
    assert all(sup[c] >= sup[r] for c, r in zip(pairs["chosen_model"], pairs["rejected_model"]))
    assert (pairs["chosen_model"] != pairs["rejected_model"]).all()
    assert pairs[["chosen_model", "rejected_model"]].drop_duplicates().shape[0] > 20  # random, not one fixed pair
    again = G.random_pairs(ds, table, seed=3, batch_size=7)  # the draw does not depend on batching
    assert again[["chosen_model", "rejected_model"]].equals(pairs[["chosen_model", "rejected_model"]])
    assert not G.random_pairs(ds, table, seed=4)["chosen_model"].equals(pairs["chosen_model"])


def _analyze(monkeypatch, *argv):
    monkeypatch.syspath_prepend(str(ROOT))
    import analyze

    monkeypatch.setattr(sys, "argv", ["analyze.py", *argv])
    analyze.main()


@pytest.mark.slow
def test_agreement_study_on_the_shipped_pool(tmp_path, monkeypatch):
    out = tmp_path / "study"
    _analyze(monkeypatch, "agreement", "--judged-only", "--models-per-prompt", "4", "all", "--limit", "60",
             "--n-boot", "200", "--output", str(out))
    study = pd.read_csv(out / "agreement_study.csv")
    assert set(study["models_per_prompt"].astype(str)) == {"4", "all"}
    base = study[study["strategy"] == G.JUDGE_LABELLED]
    assert (base["agreement"] == 1.0).all() and (base["disagree"] == 0).all()  # chosen by the judge's own label
    assert (study["records"] <= 60).all() and (study["missing"] == 0).all()  # --judged-only: every side has a label
    rules = pd.read_csv(out / "agreement_rules.csv")
    assert {"longer (characters)", "longer (tokens)", "bigger model", "coin (seeded draw)"} <= set(rules["rule"])
    for name in ("agreement_study.png", "agreement_calibration.png"):
        assert (out / name).stat().st_size > 5_000
    for name in ("agreement_by_source.csv", "agreement_calibration.csv", "agreement_min_gap.csv",
                 "agreement_model_pairs.csv", "agreement_glm.json"):
        assert (out / name).is_file(), name
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # the staging folder is gone
