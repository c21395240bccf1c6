"""Paired tests against scipy and hand computation; compare() on run folders; Tables 1, 2, 5."""

import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from zebra import stats


def test_paired_tests_match_hand_computation_and_exact_permutation():
    # d = 1,2,3,4: mean 2.5, sd sqrt(5/3), t = 2.5 / (sd / 2) = 3.87298...
    res = stats.paired_tests([0, 0, 0, 0], [1, 2, 3, 4])
    assert res.n == 4
    assert res.mean_delta == pytest.approx(2.5)
    assert res.t == pytest.approx(2.5 / (math.sqrt(5 / 3) / 2))
    assert res.p_t == pytest.approx(2 * sps.t.sf(res.t, df=3))
    # 2^4 sign flips enumerated exactly: only all-plus and all-minus reach |mean| >= 2.5
    assert res.p_perm == pytest.approx(2 / 16)


def test_paired_tests_agree_with_scipy_on_binary_scores():
    rng = np.random.default_rng(7)
    a = rng.integers(0, 2, 300).astype(float)
    b = np.where(rng.random(300) < 0.2, 1 - a, a)  # B flips 20% of A's outcomes
    res = stats.paired_tests(a, b, n_permutations=2000, seed=3)
    ref = sps.ttest_rel(b, a)
    assert res.t == pytest.approx(ref.statistic)
    assert res.p_t == pytest.approx(ref.pvalue)
    assert res.mean_delta == pytest.approx(float(np.mean(b - a)))
    # same seed, same answer; the permutation p-value tracks the t-test's on this much data
    assert stats.paired_tests(a, b, n_permutations=2000, seed=3).p_perm == res.p_perm
    assert abs(res.p_perm - res.p_t) < 0.1


def test_paired_tests_all_zero_differences_are_indistinguishable():
    res = stats.paired_tests([1, 0, 1, 1], [1, 0, 1, 1])
    assert (res.t, res.p_t, res.mean_delta, res.p_perm) == (0.0, 1.0, 0.0, 1.0)


def test_paired_tests_constant_nonzero_difference_and_too_few_pairs():
    res = stats.paired_tests([0, 0, 0], [1, 1, 1])
    assert res.t is None and res.p_t == 0.0 and res.mean_delta == 1.0
    assert res.p_perm == pytest.approx(2 / 8)
    assert math.isnan(stats.paired_tests([0], [1]).p_t)
    with pytest.raises(ValueError, match="equal-length"):
        stats.paired_tests([0, 1], [1])


def _write_run(folder, scores: dict[str, dict[str, float]], run=None, accuracy=None):
    folder.mkdir(parents=True)
    results = {}
    for bench, by_id in scores.items():
        with open(folder / f"{bench}.jsonl", "w") as f:
            for key, s in by_id.items():
                f.write(json.dumps({"id": key, "prompt": "p", "generation": "g", "prediction": "A", "gold": "A", "score": s}) + "\n")
        results[bench] = {"n": len(by_id), "accuracy": (accuracy or {}).get(bench, sum(by_id.values()) / len(by_id))}
    (folder / "summary.json").write_text(json.dumps({"run": run or {}, "results": results, "settings": {}}))
    return folder


def test_compare_runs_pairs_by_id_and_pools_table1_benchmarks(tmp_path):
    a = _write_run(tmp_path / "a", {"arc_easy": {"x": 0, "y": 1, "z": 0}, "ifeval": {"1": 0, "2": 0}, "hellaswag": {"h": 0, "k": 1}})
    # B lists ids in another order and has one extra prompt: pairing must follow ids, not lines
    b = _write_run(tmp_path / "b", {"arc_easy": {"z": 1, "y": 1, "x": 1, "extra": 1}, "ifeval": {"2": 1, "1": 0}, "hellaswag": {"h": 1, "k": 1}})
    res = stats.compare_runs(a, b, n_permutations=500)
    assert res["arc_easy"]["n"] == 3 and res["arc_easy"]["mean_delta"] == pytest.approx(2 / 3)
    assert res["ifeval"]["n"] == 2 and res["ifeval"]["mean_delta"] == pytest.approx(0.5)
    assert res["hellaswag"]["n"] == 2
    # pooled = Table 1 benchmarks only: ARC-Easy (3) + IFEval (2), HellaSwag left out
    assert res["pooled"]["n"] == 5
    assert res["pooled"]["mean_delta"] == pytest.approx(3 / 5)
    ref = sps.ttest_rel([1, 1, 1, 1, 0], [0, 1, 0, 0, 0])
    assert res["pooled"]["p_t"] == pytest.approx(ref.pvalue)
    assert list(res) == ["arc_easy", "ifeval", "hellaswag", "pooled"]


def test_compare_identical_runs_reports_no_difference(tmp_path):
    scores = {"mmlu_pro": {"1": 1, "2": 0, "3": 1}}
    res = stats.compare_runs(_write_run(tmp_path / "a", scores), _write_run(tmp_path / "b", scores))
    assert res["mmlu_pro"] == {"n": 3, "t": 0.0, "p_t": 1.0, "mean_delta": 0.0, "p_perm": 1.0}
    assert res["pooled"]["p_perm"] == 1.0
    assert "| MMLU-Pro | 3 | 0.0000 | 1.0000 | 0.0000 | 1.0000 |" in stats.format_comparison(res)


def test_read_run_rejects_duplicate_ids(tmp_path):
    folder = tmp_path / "r"
    folder.mkdir()
    (folder / "arc_easy.jsonl").write_text('{"id": "a", "score": 1}\n{"id": "a", "score": 0}\n')
    with pytest.raises(stats.RunError, match=r"arc_easy.jsonl:2: id 'a' appears twice"):
        stats.read_run(folder)
    with pytest.raises(stats.RunError, match="no such evaluation folder"):
        stats.read_run(tmp_path / "missing")


def _grid(tmp_path):
    """Two models x DPO x (baseline, sup), plus an untrained base run that Table 1 must ignore."""
    acc = {"m1": {"baseline": 0.5, "sup": 0.7}, "m2": {"baseline": 0.3, "sup": 0.2}}
    for model, by_strategy in acc.items():
        for strategy, value in by_strategy.items():
            ids = {str(i): float(i < value * 10) for i in range(10)}
            _write_run(
                tmp_path / model / f"dpo-{strategy}",
                {"arc_easy": ids, "ifeval": ids},
                run={"model": model, "method": "dpo", "strategy": strategy},
            )
    _write_run(tmp_path / "m1" / "base", {"arc_easy": {"0": 1.0}}, run={"model": "m1", "method": "base", "strategy": "none"})
    return stats.collect_runs(tmp_path)


def test_tables_1_2_5_from_a_grid(tmp_path):
    runs = _grid(tmp_path)
    assert len(runs) == 5
    t5 = stats.table5(runs)
    assert t5.loc[("arc_easy", "m1", "dpo"), "sup"] == pytest.approx(0.7)
    assert t5.loc[("ifeval", "m2", "dpo"), "baseline"] == pytest.approx(0.3)
    assert list(t5.columns)[:2] == ["baseline", "sup"]
    assert t5.loc[("arc_easy", "m1", "base"), "none"] == pytest.approx(1.0)

    t1 = stats.table1(runs)
    assert t1.loc["baseline", "arc_easy"] == pytest.approx(0.4)  # mean of 0.5 and 0.3; base run excluded
    assert t1.loc["sup", "average"] == pytest.approx(0.45)
    assert t1.loc["sup", "delta_vs_baseline"] == pytest.approx(0.05)
    assert t1.loc["sup", "n_runs"] == 2
    pretty = stats.pretty_table1(t1)
    assert pretty.loc["SUP", "Average"] == "0.4500 (+0.0500)"

    t2 = stats.table2(runs, n_permutations=200)
    row = t2.loc["SUP vs BL"]
    assert row["n"] == 40  # 2 models x 2 benchmarks x 10 prompts
    assert row["mean_delta"] == pytest.approx((0.2 * 2 - 0.1 * 2) / 4)
    md = stats.to_markdown(t5)
    assert md.splitlines()[0].startswith("| benchmark | model | method | baseline | sup")


def test_collect_runs_rejects_two_runs_with_one_identity(tmp_path):
    run = {"model": "m", "method": "dpo", "strategy": "sup"}
    _write_run(tmp_path / "x", {"arc_easy": {"1": 1.0}}, run=run)
    _write_run(tmp_path / "y", {"arc_easy": {"1": 0.0}}, run=run)
    with pytest.raises(stats.RunError, match="both model=m method=dpo strategy=sup"):
        stats.collect_runs(tmp_path)


# ----------------------------------------------------------------------------- hostile input (issue 14)


def test_table_leaves_out_unfinished_runs_and_names_them(tmp_path, caplog):
    _grid(tmp_path)
    summary = tmp_path / "m2" / "dpo-sup" / "summary.json"
    data = json.loads(summary.read_text())
    summary.write_text(json.dumps({**data, "finished": False}))
    runs = stats.collect_runs(tmp_path)
    assert len(runs) == 4 and all(r.path != summary.parent for r in runs)
    assert f"{summary.parent}" in caplog.text and "unfinished" in caplog.text
    assert stats.table1(runs).loc["sup", "n_runs"] == 1


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"run": {}, "results": {"arc_easy": {"n": 3, "accur', "the file ends inside a JSON value"),
        ('{"run": {}, "results": {"arc_easy": {"n": 3}}}', "arc_easy has no finite `accuracy`"),
        ('{"run": {}, "results": {"arc_easy": {"n": 3, "accuracy": NaN}}}', "NaN is not JSON"),
        ('{"run": {}, "results": {"arc_easy": {"n": 3, "accuracy": 1.5}}}', "outside [0, 1]"),
        ('{"run": {}, "results": ["arc_easy"]}', "`results` is ['arc_easy'], not an object"),
        ('{"run": "oops", "results": {"arc_easy": {"n": 3, "accuracy": 0.5}}}', "`run` is 'oops', not an object"),
        ('{"run": {}, "settings": [1], "results": {"arc_easy": {"n": 3, "accuracy": 0.5}}}', "`settings` is [1], not an object"),
    ],
)
def test_bad_summary_is_one_error_naming_the_file(tmp_path, content, message):
    _write_run(tmp_path / "ok", {"arc_easy": {"1": 1.0}}, run={"model": "m", "method": "dpo", "strategy": "sup"})
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "summary.json").write_text(content)
    with pytest.raises(stats.RunError, match=f"{tmp_path / 'bad' / 'summary.json'}(:\\d+)?: .*" + message.replace("[", r"\[")):
        stats.collect_runs(tmp_path)


def test_json_that_is_no_summary_is_skipped_by_name(tmp_path, caplog):
    _write_run(tmp_path / "ok", {"arc_easy": {"1": 1.0}}, run={"model": "m", "method": "dpo", "strategy": "sup"})
    (tmp_path / "analysis").mkdir()
    (tmp_path / "analysis" / "summary.json").write_text("[]")
    assert [r.path.name for r in stats.collect_runs(tmp_path)] == ["ok"]
    assert "analysis/summary.json: no `results`" in caplog.text


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-0.5", "2", '"x"'])
def test_non_finite_or_out_of_range_scores_are_errors(tmp_path, bad):
    folder = tmp_path / "r"
    folder.mkdir()
    (folder / "arc_easy.jsonl").write_text('{"id": "a", "score": 1}\n{"id": "b", "score": ' + bad + "}\n")
    # NaN and Infinity are not JSON: the reader refuses them before the score check sees them
    expected = f"{bad} is not JSON; re-run evaluate.py" if bad in ("NaN", "Infinity") else r"score .* is not a number in \[0, 1\]"
    with pytest.raises(stats.RunError, match=r"arc_easy.jsonl:2: " + expected):
        stats.read_run(folder)


def test_paired_tests_refuse_nan_and_zero_permutations():
    with pytest.raises(ValueError, match="non-finite score"):
        stats.paired_tests([0, 1, 1], [1, float("nan"), 1])
    with pytest.raises(ValueError, match="--permutations must be at least 1, got 0"):
        stats.paired_tests([0, 1, 1], [1, 0, 1], n_permutations=0)


def test_compare_names_benchmarks_missing_on_either_side(tmp_path):
    a = _write_run(tmp_path / "a", {"arc_easy": {"x": 0, "y": 1}, "ifeval": {"1": 0, "2": 1}})
    b = _write_run(tmp_path / "b", {"arc_easy": {"x": 1, "y": 1}, "mmlu_pro": {"1": 1, "2": 1}})
    with pytest.raises(stats.RunError, match=r"only .*a has ifeval; only .*b has mmlu_pro; .*--benchmarks"):
        stats.compare_runs(a, b, n_permutations=100)
    res = stats.compare_runs(a, b, n_permutations=100, benchmarks=("arc_easy",))
    assert list(res) == ["arc_easy", "pooled"] and res["pooled"]["n"] == 2
    with pytest.raises(stats.RunError, match=r"--benchmarks: .*b has no ifeval"):
        stats.compare_runs(a, b, n_permutations=100, benchmarks=("arc_easy", "ifeval"))


def test_table2_names_benchmarks_one_run_lacks(tmp_path, caplog):
    ids = {str(i): float(i % 2) for i in range(4)}
    _write_run(tmp_path / "bl", {"arc_easy": ids, "ifeval": ids}, run={"model": "m", "method": "dpo", "strategy": "baseline"})
    _write_run(tmp_path / "sup", {"arc_easy": ids}, run={"model": "m", "method": "dpo", "strategy": "sup"})
    t2 = stats.table2(stats.collect_runs(tmp_path), n_permutations=50)
    assert t2.loc["SUP vs BL", "n"] == 4
    assert "ifeval in only one of them" in caplog.text


def test_compare_leaves_out_benchmarks_too_small_to_test_and_writes_no_nan(tmp_path, caplog):
    a = _write_run(tmp_path / "a", {"arc_easy": {"x": 0, "y": 1, "z": 0}, "ifeval": {"1": 0}})
    b = _write_run(tmp_path / "b", {"arc_easy": {"x": 1, "y": 1, "z": 1}, "ifeval": {"1": 1}})
    res = stats.compare_runs(a, b, n_permutations=100)
    assert list(res) == ["arc_easy", "pooled"] and res["pooled"]["n"] == 4
    assert "ifeval: 1 paired prompt(s), too few to test; left out" in caplog.text
    json.dumps(res, allow_nan=False)  # raises on NaN/inf

