"""Behaviour tables from evaluation results (zebra/lmeval.py, build_table.py): both lm-eval formats
on real files, MMLU group aggregation, metric choice, names, every error, evaluate.py summaries, and
the round trip into read_benchmark and a binarize run."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from zebra import lmeval
from zebra.behaviour import read_benchmark
from zebra.benchmarks import MMLU_STEM_SUBJECTS
from zebra.errors import ZebraError
from zebra.evaluation import RunIdentity, summarise, write_summary

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "data" / "lm_eval"
UF = ROOT / "data" / "lm_eval_results"
UF_NAMES = UF / "ultrafeedback_names.csv"
V03_CHAT = UF / "lmeval_v0.3" / "Llama-2-7b-chat-hf" / "gpt4all.json"
V03_MMLU = FIX / "lmeval_v0.3" / "llama-7B" / "llama-7B_mmlu_5-shot.json"
V04 = FIX / "lmeval_v0.4" / "Qwen2.5-1.5B" / "results_2025-03-03T00-05-12.300060.json"
PYTHIA = FIX / "lmeval_v0.3" / "pythia-12b"
V2 = FIX / "leaderboard_v2"  # two real Open LLM Leaderboard v2 runs (tests/data/lm_eval/SOURCE.md)
V2_1B = V2 / "pythia-1b" / "results_2025-01-27T10-10-36.877664.json"
V2_COLUMNS = ["BBH", "GPQA", "IFEval", "MATH-Lvl-5", "MMLU-Pro", "MuSR"]
METRICS = {"arc_challenge": "acc_norm", "hellaswag": "acc_norm", "ifeval": "prompt_level_strict_acc"}


def load(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def build(files, **kw):
    kw.setdefault("metrics", METRICS)
    return lmeval.build_table(files, **kw)


def v03(model, tasks):
    """A made-up 0.3-format file: {task: {metric: value}}."""
    return {"results": tasks, "versions": {t: 0 for t in tasks},
            "config": {"model": "hf-causal", "model_args": f"pretrained={model},dtype=float16", "num_fewshot": 0}}


def parsed(model, tasks, path="x.json"):
    return lmeval.parse_lm_eval(v03(model, tasks), path)


def run_script(*args, cwd=ROOT):
    return subprocess.run([sys.executable, str(Path(cwd) / "build_table.py"), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


# ----------------------------------------------------------------------------- formats


def test_v03_file_real():
    rf = lmeval.parse_lm_eval(load(V03_CHAT), str(V03_CHAT))
    assert rf.format == lmeval.FORMAT_V03
    assert rf.model == "meta-llama/Llama-2-7b-chat-hf"  # pretrained=, not tokenizer= or dtype=
    assert set(rf.tasks) == {"openbookqa", "arc_easy", "winogrande", "hellaswag", "arc_challenge", "piqa", "boolq"}
    assert rf.tasks["hellaswag"]["acc_norm"].value == 0.7550288787094205
    assert rf.tasks["hellaswag"]["acc_norm"].key == 'results["hellaswag"]["acc_norm"]'
    assert "acc_stderr" not in rf.tasks["hellaswag"] and "acc_norm" not in rf.tasks["winogrande"]


def test_v04_file_real():
    rf = lmeval.parse_lm_eval(load(V04), str(V04))
    assert rf.format == lmeval.FORMAT_V04 and rf.model == "Qwen/Qwen2.5-1.5B"
    assert rf.tasks["arc_challenge"]["acc_norm"].value == 0.45307167235494883  # `acc_norm,none` → acc_norm
    assert rf.tasks["arc_challenge"]["acc_norm"].key == 'results["arc_challenge"]["acc_norm,none"]'
    assert rf.tasks["mmlu_stem"]["acc"].value == 0.525848398350777
    assert "alias" not in rf.tasks["mmlu_stem"]
    # perplexity is marked lower-is-better by the file itself
    assert ("lambada_openai", "perplexity") in rf.lower_is_better


def test_v04_filter_other_than_none_is_kept_in_the_name():
    data = {"results": {"gsm8k": {"exact_match,strict-match": 0.5, "exact_match,flexible-extract": 0.6,
                                  "exact_match_stderr,strict-match": 0.01, "alias": "gsm8k"}},
            "configs": {}, "config": {"model_args": {"pretrained": "org/m"}}}
    rf = lmeval.parse_lm_eval(data, "g.json")
    assert rf.model == "org/m"  # model_args as a dict (newer 0.4)
    assert rf.tasks["gsm8k"] == {"exact_match,strict-match": lmeval.Score(0.5, 'results["gsm8k"]["exact_match,strict-match"]'),
                                 "exact_match,flexible-extract": lmeval.Score(0.6, 'results["gsm8k"]["exact_match,flexible-extract"]')}


# ----------------------------------------------------------------------------- MMLU groups


def test_mmlu_table_matches_the_stem_subjects_and_sizes():
    groups = lmeval.read_mmlu_groups()
    assert len(groups) == 57 and sum(n for _, n in groups.values()) == 14042
    assert sorted(s for s, (g, _) in groups.items() if g == "mmlu_stem") == sorted(MMLU_STEM_SUBJECTS)


def test_aggregation_reproduces_lm_eval_04_group_values():
    """Drop the real 0.4 file's own group rows, recompute from the 57 subjects: lm-eval's numbers."""
    rf = lmeval.parse_lm_eval(load(V04), str(V04))
    reported = {g: rf.tasks[g]["acc"].value for g in ("mmlu", *lmeval.MMLU_GROUPS)}
    subjects = {t: s for t, s in rf.tasks.items() if t.startswith("mmlu_") and t not in reported}
    assert len(subjects) == 57
    agg = lmeval.aggregate_mmlu(subjects, lmeval.read_mmlu_groups())
    for g, value in reported.items():
        assert agg[g]["acc"].value == pytest.approx(value, abs=1e-12), g
    # and the unweighted mean would not (so the test can tell the weighting apart)
    stem = [subjects[f"mmlu_{s}"]["acc"].value for s in MMLU_STEM_SUBJECTS]
    assert abs(np.mean(stem) - reported["mmlu_stem"]) > 0.005


def test_aggregation_by_hand_on_a_made_up_v03_file():
    groups = lmeval.read_mmlu_groups()
    tasks = {f"hendrycksTest-{s}": {"acc": 0.5, "acc_norm": 0.25} for s in groups}
    tasks["hendrycksTest-abstract_algebra"] = {"acc": 1.0, "acc_norm": 1.0}  # 100 questions
    tasks["hendrycksTest-college_physics"] = {"acc": 0.0, "acc_norm": 0.0}  # 102 questions
    rf = lmeval.parse_lm_eval(v03("org/m", tasks), "m.json")
    agg = lmeval.aggregate_mmlu(rf.tasks, groups)
    # by hand: STEM has 3,153 questions; 100 at 1.0, 102 at 0.0, the other 2,951 at 0.5
    assert agg["mmlu_stem"]["acc"].value == pytest.approx((100 * 1.0 + 2951 * 0.5) / 3153, abs=1e-15)
    assert agg["mmlu_stem"]["acc_norm"].value == pytest.approx((100 * 1.0 + 2951 * 0.25) / 3153, abs=1e-15)
    assert agg["mmlu_humanities"]["acc"].value == 0.5
    assert agg["mmlu"]["acc"].value == pytest.approx((100 + (14042 - 202) * 0.5) / 14042, abs=1e-15)
    assert "size-weighted mean of 19 subjects' acc" in agg["mmlu_stem"]["acc"].key


def test_partial_group_is_not_computed(caplog):
    groups = lmeval.read_mmlu_groups()
    tasks = {f"mmlu_{s}": {"acc": lmeval.Score(0.5, "k")} for s in groups if s != "anatomy"}
    agg = lmeval.aggregate_mmlu(tasks, groups, "p.json")
    assert "mmlu_stem" not in agg and "mmlu" not in agg and "mmlu_other" in agg
    assert "mmlu_stem has 18 of its 19 subjects" in caplog.text


def test_real_v03_mmlu_file_becomes_group_columns():
    files, _ = lmeval.read_result_files([V03_MMLU])
    table = build(files)
    assert table.tasks == ["mmlu", "mmlu_humanities", "mmlu_other", "mmlu_social_sciences", "mmlu_stem"]
    data = load(V03_MMLU)["results"]
    by_hand = sum(data[f"hendrycksTest-{s}"]["acc"] * n for s, (g, n) in lmeval.read_mmlu_groups().items()
                  if g == "mmlu_stem") / 3153
    assert table.value(table.models[0], "mmlu_stem") == pytest.approx(by_hand, abs=1e-15)
    # a subject is a column only when asked for
    one = build(files, tasks=["mmlu_anatomy"])
    assert one.value(one.models[0], "mmlu_anatomy") == data["hendrycksTest-anatomy"]["acc"]


# ----------------------------------------------------------------------------- metrics


def test_default_metric_choice():
    files, _ = lmeval.read_result_files([V03_CHAT])
    table = build(files)
    m = table.models[0]
    raw = load(V03_CHAT)["results"]
    assert table.cells[(m, "arc_challenge")].metric == "acc_norm"
    assert table.value(m, "hellaswag") == raw["hellaswag"]["acc_norm"]
    assert table.cells[(m, "arc_easy")].metric == "acc"  # not on the leaderboard: acc
    assert table.value(m, "arc_easy") == raw["arc_easy"]["acc"]


def test_metric_override():
    files, _ = lmeval.read_result_files([V03_CHAT])
    table = build(files, overrides={"hellaswag": "acc"})
    assert table.value(table.models[0], "hellaswag") == load(V03_CHAT)["results"]["hellaswag"]["acc"]
    assert lmeval.parse_metric_overrides(["hellaswag=acc", " x = y "]) == {"hellaswag": "acc", "x": "y"}
    with pytest.raises(lmeval.ResultFileError, match="has no metric 'f1'"):
        build(files, overrides={"hellaswag": "f1"})
    with pytest.raises(lmeval.ResultFileError, match="write TASK=METRIC"):
        lmeval.parse_metric_overrides(["hellaswag"])


def test_lower_is_better_metric_is_refused():
    rf = lmeval.parse_lm_eval(load(V04), str(V04))
    with pytest.raises(lmeval.ResultFileError, match="lambada_openai metric 'perplexity' is lower-is-better"):
        build([rf], overrides={"lambada_openai": "perplexity"})


def test_task_without_acc_is_no_column_and_is_named():
    a = parsed("org/a", {"crows": {"pct_stereotype": 0.6}, "piqa": {"acc": 0.7}})
    b = parsed("org/b", {"crows": {"pct_stereotype": 0.5}, "piqa": {"acc": 0.8}})
    table = build([a, b])
    assert table.tasks == ["piqa"] and table.counts["tasks_without_metric"] == 1
    # one line for all such tasks (a leaderboard-style file has dozens), naming each
    assert "1 task(s) with no 'acc' and no default metric are not columns: crows" in table.notes[-1]


def test_default_metric_missing_in_one_file_leaves_the_cell_missing():
    a = parsed("org/a", {"arc_challenge": {"acc": 0.4, "acc_norm": 0.45}})
    b = parsed("org/b", {"arc_challenge": {"acc": 0.5}})  # no acc_norm: never silently acc instead
    with pytest.raises(lmeval.ResultFileError, match="1 of 2 cells are missing"):
        build([a, b])
    table = build([a, b], missing="keep")
    assert table.value("org/a", "arc_challenge") == 0.45 and table.value("org/b", "arc_challenge") is None
    assert table.counts["cells_without_metric"] == 1


# ----------------------------------------------------------------------------- names


def test_names_map_full_name_and_last_part(tmp_path):
    names = lmeval.read_model_names(UF_NAMES)
    assert len(names) == 8 and names["OpenAssistant/oasst-sft-1-pythia-12b"] == "pythia-12b"
    assert lmeval.map_model_name("meta-llama/Llama-2-7b-chat-hf", names) == "llama-2-7b-chat"
    assert lmeval.map_model_name("/models/Llama-2-7b-chat-hf", {"Llama-2-7b-chat-hf": "x"}) == "x"
    assert lmeval.map_model_name("org/unknown", names) is None
    # the shipped AlpacaEval pool's map has the same format (a path in the repository: the test
    # used to read a copy outside it and passed silently when that was missing)
    alpaca = ROOT / "data" / "alpaca_eval" / "model_names.csv"
    assert lmeval.read_model_names(alpaca)["oasst-sft-pythia-12b"] == "pythia-12b"


def test_only_mapped_and_row_order(tmp_path):
    files, _ = lmeval.read_result_files([UF, V04])
    names = lmeval.read_model_names(UF_NAMES)
    table = build(files, names=names, only_mapped=True)
    assert table.models == list(names.values())  # the map's order
    assert table.counts["models_not_mapped"] == 1
    kept = build(files, names=names, missing="drop-task")
    assert kept.models[-1] == "Qwen/Qwen2.5-1.5B"  # unmapped: its own name, after the mapped ones


@pytest.mark.parametrize("text,match", [
    ("name,table\na,b\n", "header must be exactly pool_name,behaviour_table_name"),
    ("pool_name,behaviour_table_name\na,b\na,c\n", "names.csv:3: 'a' is mapped twice"),
    ("pool_name,behaviour_table_name\na,\n", "names.csv:2: expected two non-empty names"),
    ("pool_name,behaviour_table_name\nalpaca,alpaca-7b\ncaf\xe9,gpt-4\n", r"names.csv:3: not UTF-8 text \(byte 51"),
])
def test_names_map_errors(tmp_path, text, match):
    p = tmp_path / "names.csv"
    p.write_text(text, encoding="latin-1")
    with pytest.raises(ZebraError, match=match):
        lmeval.read_model_names(p)


# ----------------------------------------------------------------------------- merging and errors


def test_real_conflict_pythia_zero_vs_five_shot():
    files, _ = lmeval.read_result_files([PYTHIA])
    with pytest.raises(lmeval.ResultFileError, match=r"EleutherAI/pythia-v1.1-12b / arc_challenge: .* in .*12b-5shot.* vs .* in .*12b_step"):
        build(files, tasks=["arc_challenge"])
    first = build(files, tasks=["arc_challenge"], on_conflict="first")
    last = build(files, tasks=["arc_challenge"], on_conflict="last")
    five, zero = (load(PYTHIA / f)["results"]["arc_challenge"]["acc_norm"] for f in ("12b-5shot_step143000.json", "12b_step143000.json"))
    assert first.value(first.models[0], "arc_challenge") == five  # path order: 12b-5shot… < 12b_step…
    assert last.value(last.models[0], "arc_challenge") == zero
    assert first.counts["cells_conflicting"] == 1 and "kept the first" in first.notes[-1]


def test_agreeing_duplicate_and_split_files_merge():
    a1 = parsed("org/a", {"piqa": {"acc": 0.7}}, "a1.json")
    a2 = parsed("org/a", {"piqa": {"acc": 0.7}, "boolq": {"acc": 0.6}}, "a2.json")
    b = parsed("org/b", {"piqa": {"acc": 0.8}, "boolq": {"acc": 0.5}}, "b.json")
    table = build([a1, a2, b])
    assert table.counts["cells_agreeing_duplicates"] == 1
    assert table.cells[("org/a", "piqa")].file == "a1.json" and table.cells[("org/a", "boolq")].file == "a2.json"


def test_two_names_mapped_to_one_row_conflict():
    a = parsed("org/a", {"piqa": {"acc": 0.7}})
    b = parsed("org/b", {"piqa": {"acc": 0.8}})
    with pytest.raises(lmeval.ResultFileError, match="same / piqa"):
        build([a, b], names={"org/a": "same", "org/b": "same"})


def test_missing_cell_policies():
    a = parsed("org/a", {"piqa": {"acc": 0.7}, "boolq": {"acc": 0.6}})
    b = parsed("org/b", {"piqa": {"acc": 0.8}})
    c = parsed("org/c", {"piqa": {"acc": 0.6}, "boolq": {"acc": 0.7}})
    with pytest.raises(lmeval.ResultFileError, match=r"1 of 6 cells are missing \(first: model 'org/b', task 'boolq'\)"):
        build([a, b, c])
    assert build([a, b, c], missing="drop-task").tasks == ["piqa"]
    dm = build([a, b, c], missing="drop-model")
    assert dm.models == ["org/a", "org/c"] and dm.counts["models_dropped"] == 1
    kept = build([a, b, c], missing="keep")
    assert lmeval.table_csv(kept).splitlines()[2] == "org/b,,0.8"


@pytest.mark.parametrize("data,match", [
    ({"config": {}}, "no `results` object"),
    ({"results": {"harness|arc:challenge|25": {"acc": 0.5}}, "config_general": {}}, "old Open LLM Leaderboard"),
    ({"results": {"piqa": {"acc": 0.5}}, "config": {"model_args": "engine=davinci"}}, "no pretrained="),
    ({"results": {"piqa": {"acc": float("nan")}}, "config": {"model_args": "pretrained=m"}}, r'results\["piqa"\]\["acc"\] is nan'),
    ({"results": {"piqa": {"acc": 70.5}}, "config": {"model_args": "pretrained=m"}}, r"70.5, outside \[0, 1\]"),
])
def test_bad_lm_eval_files(data, match):
    with pytest.raises(lmeval.ResultFileError, match=match):
        lmeval.parse_lm_eval(data, "bad.json")


def test_file_errors(tmp_path):
    (tmp_path / "x.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ZebraError, match=r"x.json:1: not valid JSON \(Expecting property name"):
        lmeval.read_result_files([tmp_path / "x.json"])
    with pytest.raises(lmeval.ResultFileError, match="no such file or folder"):
        lmeval.read_result_files([tmp_path / "nope"])
    with pytest.raises(lmeval.ResultFileError, match="no result files given"):
        build([])
    with pytest.raises(lmeval.ResultFileError, match="--tasks 'mmlu_pro': no file has it"):
        build([parsed("a", {"piqa": {"acc": 0.5}})], tasks=["mmlu_pro"])
    with pytest.raises(lmeval.ResultFileError, match="--missing must be one of"):
        build([parsed("a", {"piqa": {"acc": 0.5}})], missing="fill")


def test_folder_skips_other_json_and_names_it(tmp_path):
    shutil.copy(V03_CHAT, tmp_path / "gpt4all.json")
    (tmp_path / "total.json").write_text('{"score": 1}', encoding="utf-8")  # FastEval's own summary
    files, skipped = lmeval.read_result_files([tmp_path])
    assert len(files) == 1 and skipped == [str(tmp_path / "total.json")]
    with pytest.raises(lmeval.ResultFileError, match="no `results` object"):  # named directly: must parse
        lmeval.read_result_files([tmp_path / "total.json"])


# ----------------------------------------------------------------------------- evaluate.py summaries


def write_eval_run(folder, model, accuracies, ifeval=None, run=None):
    results = {}
    for bench, acc in accuracies.items():
        n = 4
        recs = [{"score": float(i < round(acc * n)), "prediction": "A"} for i in range(n)]
        results[bench] = summarise(recs, "mc")
    if ifeval is not None:
        recs = [{"score": s, "prediction": [s == 1.0, True], "inst_loose": [True, True], "score_loose": 1.0} for s in ifeval]
        results["ifeval"] = summarise(recs, "ifeval")
    write_summary(Path(folder), results, {"model": model}, run or RunIdentity(model), 1.0, finished=True)


def test_evaluate_summary_path(tmp_path):
    write_eval_run(tmp_path / "a", "org/a", {"arc_challenge": 0.5, "mmlu_stem": 0.25}, ifeval=[1.0, 0.0, 0.0, 0.0])
    write_eval_run(tmp_path / "b", "org/b", {"arc_challenge": 0.75, "mmlu_stem": 0.5}, ifeval=[1.0, 1.0, 0.0, 0.0])
    write_eval_run(tmp_path / "c", "org/a", {"arc_challenge": 1.0, "mmlu_stem": 1.0}, ifeval=[1.0] * 4,
                   run=RunIdentity("org/a", "dpo", "sup"))
    files, _ = lmeval.read_result_files(evaluate=[tmp_path])
    assert [f.format for f in files] == [lmeval.FORMAT_EVALUATE] * 3
    table = build(files)
    assert table.models == ["org/a", "org/a+dpo-sup", "org/b"]
    assert table.tasks == ["arc_challenge", "ifeval", "mmlu_stem"]
    assert table.value("org/a", "arc_challenge") == 0.5  # evaluate.py's accuracy, not a missing acc_norm
    assert table.cells[("org/a", "ifeval")].metric == "prompt_level_strict_acc"
    assert table.value("org/b", "ifeval") == 0.5 and table.value("org/a+dpo-sup", "mmlu_stem") == 1.0
    assert table.cells[("org/b", "ifeval")].key == 'results["ifeval"]["prompt_level_strict_acc"]'
    inst = build(files, overrides={"ifeval": "inst_level_strict_acc", "arc_challenge": "acc"})
    assert inst.value("org/a", "ifeval") == 0.625  # 5 of 8 instructions
    assert inst.cells[("org/b", "arc_challenge")].metric == "accuracy"  # `acc` is evaluate.py's `accuracy`
    with pytest.raises(lmeval.ResultFileError, match="has no metric 'acc_norm'"):
        build(files, overrides={"arc_challenge": "acc_norm"})


def test_evaluate_and_lm_eval_mixed_column_is_noted(tmp_path):
    write_eval_run(tmp_path / "a", "org/a", {"arc_challenge": 0.5})
    files, _ = lmeval.read_result_files([V03_CHAT], [tmp_path])
    table = build(files, tasks=["arc_challenge"])
    assert any("column arc_challenge mixes metrics {'acc_norm': 1, 'accuracy': 1}" in n for n in table.notes)


# ----------------------------------------------------------------------------- Open LLM Leaderboard v2


def defaults():
    """build_table.py's constants block (METRICS, FALLBACK_METRIC): what a user of the script gets."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_table_script", ROOT / "build_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # nothing runs at import: main() is behind __main__
    return module.METRICS, module.FALLBACK_METRIC


def v2_file(subtasks: dict[str, float], model="org/m", extra=None) -> dict:
    """A Leaderboard v2 results file in lm-eval 0.4's shape: leaderboard task → `metric,none` value."""
    lb = lmeval.read_leaderboard_table()
    metric = {m.task: m.metric for members in lb.values() for m in members}
    results = {t: {f"{metric[t]},none": v, f"{metric[t]}_stderr,none": "N/A", "alias": f" - {t}"}
               for t, v in subtasks.items()}
    results.update(extra or {})
    return {"results": results, "group_subtasks": {t: [] for t in results}, "configs": {}, "versions": {},
            "n-shot": {}, "higher_is_better": {}, "n-samples": {}, "config": {"model_args": f"pretrained={model}"}}


def at_chance(column: str) -> dict[str, float]:
    """Every member task of a column scoring exactly its chance level (1/choices)."""
    return {m.task: (1 / m.choices if m.choices > 1 else 0.0) for m in lmeval.read_leaderboard_table()[column]}


def test_leaderboard_v2_folder_becomes_the_six_columns():
    """Today's most common lm-eval files: two real leaderboard runs → IFEval, MMLU-Pro and the four others."""
    metrics, fallback = defaults()
    files, skipped = lmeval.read_result_files([V2])
    assert skipped == [] and [f.format for f in files] == [lmeval.FORMAT_V04] * 2
    table = lmeval.build_table(files, metrics=metrics, fallback=fallback)
    assert table.tasks == V2_COLUMNS and table.models == ["EleutherAI/pythia-1.4b", "EleutherAI/pythia-1b"]
    raw = load(V2_1B)["results"]
    m = "EleutherAI/pythia-1b"
    assert table.value(m, "IFEval") == raw["leaderboard_ifeval"]["prompt_level_strict_acc,none"] == 0.16820702402957485
    assert table.cells[(m, "IFEval")].key == 'results["leaderboard_ifeval"]["prompt_level_strict_acc,none"]'
    assert table.value(m, "MMLU-Pro") == raw["leaderboard_mmlu_pro"]["acc,none"] == 0.11361369680851063
    # GPQA and MATH: lm-eval's own group values (size-weighted), which the file also carries
    assert table.value(m, "GPQA") == pytest.approx(raw["leaderboard_gpqa"]["acc_norm,none"], abs=1e-12)
    assert table.value(m, "MATH-Lvl-5") == pytest.approx(raw["leaderboard_math_hard"]["exact_match,none"], abs=1e-12)
    assert table.cells[(m, "BBH")].metric == table.cells[(m, "MuSR")].metric == "acc_norm_above_chance"
    assert table.counts["tasks_without_metric"] == 0 and not table.notes  # the 38 warnings of issue 24 are gone


def test_leaderboard_groups_reproduce_lm_eval_from_the_shipped_sizes():
    """The sizes in lmeval_leaderboard.csv give lm-eval's size-weighted group rows of both real runs
    to 1e-12; the unweighted mean would not (so the test tells the two apart)."""
    lb = lmeval.read_leaderboard_table()
    groups = {"BBH": "leaderboard_bbh", "GPQA": "leaderboard_gpqa", "MATH-Lvl-5": "leaderboard_math_hard",
              "MuSR": "leaderboard_musr"}
    for path in sorted(V2.rglob("*.json")):
        raw = load(path)["results"]
        for column, group in groups.items():
            members = lb[column]
            metric = f"{members[0].metric},none"
            values = [raw[m.task][metric] for m in members]
            weighted = sum(v * m.n for v, m in zip(values, members)) / sum(m.n for m in members)
            assert weighted == pytest.approx(raw[group][metric], abs=1e-12), (path.name, column)
            if column in ("BBH", "GPQA", "MuSR"):
                assert abs(np.mean(values) - raw[group][metric]) > 1e-4, (path.name, column)
    assert [len(lb[c]) for c in ("BBH", "GPQA", "MATH-Lvl-5", "MuSR", "IFEval", "MMLU-Pro")] == [24, 3, 7, 3, 1, 1]


def test_above_chance_is_the_leaderboards_normalisation():
    """The worked examples of huggingface/leaderboards' normalization.md (GPQA 0.6 → 46.67; MuSR 0.7,
    0.4, 0.6 with 2, 5, 3 choices → 40, 25, 40, mean 35), and the clip at chance."""
    assert lmeval.above_chance(0.6, 4) == pytest.approx(0.4666666, abs=1e-6)
    musr = [lmeval.above_chance(v, k) for v, k in ((0.7, 2), (0.4, 5), (0.6, 3))]
    assert musr == pytest.approx([0.4, 0.25, 0.4]) and np.mean(musr) == pytest.approx(0.35)
    assert lmeval.above_chance(0.1, 4) == 0.0 and lmeval.above_chance(0.25, 4) == 0.0
    assert lmeval.above_chance(0.03, 0) == 0.03  # generative: chance 0, the score as it is


def test_bbh_and_musr_by_hand():
    """BBH: every subtask at chance but boolean_expressions (2 choices) at 1.0 and object_counting (19
    choices) at 0, below chance: (1 + 0 + 22 × 0) / 24 — unweighted (causal_judgement's 187 questions
    count as much as 250), clipped (object_counting would be −0.056 unclipped). MuSR by hand: 0.75 of 2
    → 0.5, 0.6 of 5 → 0.5, 0.2 of 3 → 0: mean 1/3."""
    bbh = at_chance("BBH")
    bbh["leaderboard_bbh_boolean_expressions"] = 1.0
    bbh["leaderboard_bbh_object_counting"] = 0.0
    musr = {"leaderboard_musr_murder_mysteries": 0.75, "leaderboard_musr_object_placements": 0.6,
            "leaderboard_musr_team_allocation": 0.2}
    rf = lmeval.parse_lm_eval(v2_file({**bbh, **musr}), "m.json")
    agg = lmeval.aggregate_leaderboard(rf.tasks, lmeval.read_leaderboard_table(), "m.json")
    assert set(agg) == {"BBH", "MuSR"}
    assert agg["BBH"]["acc_norm_above_chance"].value == pytest.approx(1 / 24, abs=1e-15)
    assert agg["MuSR"]["acc_norm_above_chance"].value == pytest.approx(1 / 3, abs=1e-15)
    assert "normalised above chance" in agg["BBH"]["acc_norm_above_chance"].key


def test_partial_leaderboard_group_is_not_a_column(caplog):
    bbh = at_chance("BBH")
    del bbh["leaderboard_bbh_navigate"]
    rf = lmeval.parse_lm_eval(v2_file({**bbh, "leaderboard_mmlu_pro": 0.3}), "p.json")
    agg = lmeval.aggregate_leaderboard(rf.tasks, lmeval.read_leaderboard_table(), "p.json")
    assert set(agg) == {"MMLU-Pro"}
    assert "p.json: BBH has 23 of its 24 leaderboard tasks with acc_norm; the column is not computed" in caplog.text


def v2_files():
    return lmeval.read_result_files([V2])[0]


def test_metric_with_or_without_the_none_filter():
    metrics, fallback = defaults()
    for given in ("inst_level_strict_acc", "inst_level_strict_acc,none"):
        table = lmeval.build_table(v2_files(), metrics=metrics, fallback=fallback,
                                   overrides=lmeval.parse_metric_overrides([f"IFEval={given}"]))
        assert table.value("EleutherAI/pythia-1b", "IFEval") == 0.2733812949640288
        assert table.cells[("EleutherAI/pythia-1b", "IFEval")].metric == "inst_level_strict_acc"
    # the defaults may be written either way too
    table = lmeval.build_table(v2_files(), metrics={**metrics, "IFEval": "prompt_level_loose_acc,none"}, fallback=fallback)
    assert table.value("EleutherAI/pythia-1b", "IFEval") == 0.1756007393715342
    assert lmeval.parse_metric_overrides(["gsm8k=exact_match,strict-match"]) == {"gsm8k": "exact_match,strict-match"}


def test_metric_patterns_work_on_columns():
    """A `*` key names every column it matches: here two leaderboard subtasks made columns by --tasks."""
    metrics, fallback = defaults()
    tasks = ["leaderboard_bbh_navigate", "leaderboard_bbh_snarks", "IFEval"]
    table = lmeval.build_table(v2_files(), metrics=metrics, fallback=fallback, tasks=tasks,
                               overrides=lmeval.parse_metric_overrides(["leaderboard_bbh_*=acc_norm"]))
    assert table.tasks == tasks
    assert table.value("EleutherAI/pythia-1b", "leaderboard_bbh_snarks") == 0.5393258426966292
    files, _ = lmeval.read_result_files([V03_CHAT])
    arc = build(files, overrides=lmeval.parse_metric_overrides(["arc_*=acc"]))
    raw = load(V03_CHAT)["results"]
    assert arc.value(arc.models[0], "arc_challenge") == raw["arc_challenge"]["acc"]  # not the default acc_norm
    assert arc.cells[(arc.models[0], "arc_easy")].metric == "acc"


@pytest.mark.parametrize("flags,match", [
    # a pattern that reaches only subtasks aggregated into a column: silently ignored before
    (["leaderboard_bbh_*=acc_norm"], r"--metric leaderboard_bbh_\*=acc_norm matches no column \(it matches 24 task\(s\) "
                                     r"that are no columns \(leaderboard_bbh_boolean_expressions, .*name them in --tasks"),
    (["mmlu_pro=acc"], r"--metric mmlu_pro=acc matches no column \(no file has such a task\); the columns are BBH, GPQA, "
                       r"IFEval, MATH-Lvl-5, MMLU-Pro, MuSR"),
    (["MMLU*=acc", "*-Pro=f1"], r"task MMLU-Pro matches MMLU\*=acc, \*-Pro=f1, which name different metrics"),
    (["IFEval=acc"], r"IFEval has no metric 'acc' \(--metric\); it has inst_level_loose_acc"),
])
def test_refused_metric_forms(flags, match):
    metrics, fallback = defaults()
    with pytest.raises(lmeval.ResultFileError, match=match):
        lmeval.build_table(v2_files(), metrics=metrics, fallback=fallback, overrides=lmeval.parse_metric_overrides(flags))


def test_refused_metric_flag_syntax():
    with pytest.raises(lmeval.ResultFileError, match="write TASK=METRIC"):
        lmeval.parse_metric_overrides(["IFEval=,none"])
    with pytest.raises(lmeval.ResultFileError, match="given twice"):
        lmeval.parse_metric_overrides(["IFEval=acc", "IFEval=f1"])


def test_tasks_errors_name_what_the_files_have():
    metrics, fallback = defaults()
    with pytest.raises(lmeval.ResultFileError) as err:
        lmeval.build_table(v2_files(), metrics=metrics, fallback=fallback, tasks=["mmlu_pro"])
    assert str(err.value) == ("--tasks 'mmlu_pro': no file has it; the files have BBH, GPQA, IFEval, MATH-Lvl-5, "
                              "MMLU-Pro, MuSR (and 44 subtasks that feed those columns, e.g. MMLU subjects or Open LLM "
                              "Leaderboard tasks; --tasks can name them too)")
    with pytest.raises(lmeval.ResultFileError, match=r"--tasks 'leaderboard_gpqa_main': no file has its metric "
                                                     r"\(they give acc_norm\); choose one with --metric"):
        lmeval.build_table(v2_files(), metrics=metrics, fallback=fallback, tasks=["leaderboard_gpqa_main"])


def test_leaderboard_readme_command(tmp_path):
    """The README's one command: a v2 results folder → a table with IFEval and MMLU-Pro columns that
    read_benchmark takes."""
    out = tmp_path / "v2.csv"
    proc = run_script("--lm-eval", "tests/data/lm_eval/leaderboard_v2", "--output", out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"wrote {out}: 2 models x 6 tasks (BBH, GPQA, IFEval, MATH-Lvl-5, MMLU-Pro, MuSR)")
    assert "WARNING" not in proc.stderr
    bt = read_benchmark(out)
    assert list(bt.benchmarks) == V2_COLUMNS and list(bt.models) == ["EleutherAI/pythia-1.4b", "EleutherAI/pythia-1b"]
    prov = json.loads((tmp_path / "v2.provenance.json").read_text())
    assert prov["columns"]["BBH"] == {"metric": "acc_norm_above_chance",
                                      "unit": "fraction of the range above chance (Open LLM Leaderboard v2)"}
    assert prov["columns"]["IFEval"]["metric"] == "prompt_level_strict_acc"
    # the README's table of the result, to its four printed decimals
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for model in bt.models:
        row = next(line for line in readme.splitlines() if line.startswith(f"| {model} |"))
        printed = [float(x) for x in row.strip("|").split("|")[1:]]
        assert printed == [round(float(v), 4) for v in bt.raw[bt.index[model]]], model


# ----------------------------------------------------------------------------- writing, round trip


def test_write_is_atomic_and_provenance_complete(tmp_path):
    files, _ = lmeval.read_result_files([UF])
    table = build(files, names=lmeval.read_model_names(UF_NAMES))
    out = tmp_path / "t.csv"
    lmeval.write_table(table, out, {"x": 1})
    prov = json.loads((tmp_path / "t.provenance.json").read_text())
    assert len(prov["cells"]) == 56 and prov["columns"]["hellaswag"]["metric"] == "acc_norm"
    cell = next(c for c in prov["cells"] if c["model"] == "pythia-12b" and c["task"] == "boolq")
    src = load(ROOT / cell["file"]) if not Path(cell["file"]).is_absolute() else load(cell["file"])
    assert src["results"]["boolq"]["acc"] == cell["value"] and cell["key"] == 'results["boolq"]["acc"]'
    before = out.read_bytes()
    comma = lmeval.ResultFile("c.json", lmeval.FORMAT_V03, "a,b", {"piqa": {"acc": lmeval.Score(0.5, "k")}})
    bad = build([comma, parsed("c", {"piqa": {"acc": 0.6}})])
    with pytest.raises(lmeval.ResultFileError, match="holds a comma"):
        lmeval.write_table(bad, out, {})
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["t.csv", "t.provenance.json"]
    with pytest.raises(lmeval.ResultFileError, match="a behaviour table is a .csv file"):
        lmeval.write_table(table, tmp_path / "t.json", {})


def test_read_benchmark_round_trip(tmp_path):
    files, _ = lmeval.read_result_files([UF])
    table = build(files, names=lmeval.read_model_names(UF_NAMES))
    lmeval.write_table(table, tmp_path / "t.csv", {})
    bt = read_benchmark(tmp_path / "t.csv")
    assert list(bt.models) == table.models and list(bt.benchmarks) == table.tasks
    expected = np.array([[table.value(m, t) for t in table.tasks] for m in table.models])
    assert np.array_equal(bt.raw, expected)  # fractions, bit for bit


def test_shipped_table_is_what_the_command_builds(tmp_path):
    proc = run_script("--lm-eval", "data/lm_eval_results", "--model-names", "data/lm_eval_results/ultrafeedback_names.csv",
                      "--output", tmp_path / "t.csv")
    assert proc.returncode == 0, proc.stderr
    assert "8 models x 7 tasks" in proc.stdout
    assert (tmp_path / "t.csv").read_bytes() == (ROOT / "model_aware" / "lm_eval_table.csv").read_bytes()
    shipped = json.loads((ROOT / "model_aware" / "lm_eval_table.provenance.json").read_text())
    assert json.loads((tmp_path / "t.provenance.json").read_text())["cells"] == shipped["cells"]


def test_script_errors_are_one_line(tmp_path):
    proc = run_script("--lm-eval", PYTHIA, "--output", tmp_path / "t.csv")
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ")
    assert "--on-conflict first|last" in proc.stderr and not (tmp_path / "t.csv").exists()
    proc = run_script("--lm-eval", V03_CHAT, "--only-mapped", "--output", tmp_path / "t.csv")
    assert proc.returncode == 1 and "error: --only-mapped needs --model-names" in proc.stderr


def test_fresh_clone_command_then_binarize(tmp_path):
    """The README's one command in a folder holding only what a clone has (the script, the package,
    the shipped result files), then SUP on the shipped pool with the table it wrote."""
    clone = tmp_path / "clone"
    shutil.copytree(ROOT / "zebra", clone / "zebra", ignore=shutil.ignore_patterns("__pycache__", "nltk_data"))
    shutil.copytree(UF, clone / "data" / "lm_eval_results")
    shutil.copy(ROOT / "build_table.py", clone)
    proc = run_script("--lm-eval", "data/lm_eval_results", "--model-names", "data/lm_eval_results/ultrafeedback_names.csv",
                      "--output", "model_aware/lm_eval_table.csv", cwd=clone)
    assert proc.returncode == 0, proc.stderr
    table = clone / "model_aware" / "lm_eval_table.csv"
    assert table.read_bytes() == (ROOT / "model_aware" / "lm_eval_table.csv").read_bytes()
    out = tmp_path / "sup.json"
    proc = subprocess.run([sys.executable, str(ROOT / "binarize_score.py"), "--behaviour-table", str(table), "--output", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    records = json.loads(out.read_text())
    bt = read_benchmark(table)
    assert records and {m for r in records for m in r["most_similar_pair"]} <= set(bt.models)
    sup = dict(zip(bt.models, bt.mb_sup))
    assert all(sup[r["most_similar_pair"][0]] >= sup[r["most_similar_pair"][1]] for r in records)
    meta = json.loads((tmp_path / "sup.json.meta.json").read_text())
    assert meta["counts"]["rows_written"] == len(records) and meta["settings"]["benchmark"] == str(table)


# ----------------------------------------------------------------------------- the study


def test_compare_pairs_counts_by_hand():
    import pandas as pd

    from zebra.lmeval_study import compare_pairs

    a = pd.DataFrame({"prompt_id": ["p1", "p2", "p3", "p4"], "chosen_model": ["x", "x", "x", "y"],
                      "rejected_model": ["y", "y", "z", "z"]})
    b = pd.DataFrame({"prompt_id": ["p1", "p2", "p3", "p5"], "chosen_model": ["x", "y", "y", "x"],
                      "rejected_model": ["y", "x", "w", "y"]})
    assert compare_pairs(a, b) == {"pairs_a": 4, "pairs_b": 4, "prompts_both": 3, "same": 1, "swapped": 1,
                                   "changed": 2, "changed_other_models": 1, "only_a": 1, "only_b": 1}


def test_restricted_table_and_spearman():
    from zebra.lmeval_study import mb_sup_over, restrict_csv, shared_models, spearman

    ours, paper = read_benchmark(ROOT / "model_aware" / "lm_eval_table.csv"), read_benchmark(ROOT / "model_aware" / "benchmark.csv")
    models = shared_models(ours, paper)
    assert models == list(ours.models) and len(models) == 8
    text = restrict_csv(paper, models)
    # the raw values as read_benchmark holds them: `%` cells as fractions, plain numbers as they are
    assert text.splitlines()[1] == "llama-2-7b-chat,25.19,0.531,0.2032,0.675,0.7214,0.5461"
    assert spearman(np.array([1.0, 2, 3]), np.array([10.0, 30, 20])) == pytest.approx(0.5)
    assert spearman(mb_sup_over(ours, models), mb_sup_over(ours, models)) == pytest.approx(1.0)


def test_study_runs_on_a_small_pool(tmp_path):
    from zebra.lmeval_study import format_study, run_study

    lines = (ROOT / "data" / "ultrafeedback_sample.jsonl").read_text(encoding="utf-8").splitlines()[:60]
    data = tmp_path / "pool.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run_study(str(ROOT / "model_aware" / "lm_eval_table.csv"), str(ROOT / "model_aware" / "benchmark.csv"),
                       str(data), str(tmp_path / "study"), ("sup",), 0.1)
    saved = json.loads((tmp_path / "study" / "study.json").read_text())
    assert saved["shared_models"] == result["shared_models"] and len(saved["shared_models"]) == 8
    for variant in ("shared", "as_is"):
        entry = saved["comparisons"][f"K=all/{variant}/sup"]
        p = entry["pairs"]
        a = read_records_count(tmp_path / "study" / "kall" / variant / "a_sup.json")
        b = read_records_count(tmp_path / "study" / "kall" / variant / "b_sup.json")
        assert (p["pairs_a"], p["pairs_b"]) == (a, b) and p["same"] + p["changed"] == p["prompts_both"]
        g = entry["gpt4"]["a_all"]
        assert g["agree"] + g["disagree"] + g["tie"] + g["missing"] == g["records"] == a
        assert g["decided"] == g["agree"] + g["disagree"] and g["agreement"] == pytest.approx(g["agree"] / g["decided"])
        differ = entry["gpt4"]["a_where_pairs_differ"]["records"]
        assert differ == p["changed"]  # every prompt of A's is in B's here (B rates a superset of models)
    # the shared comparison: the same 8 models in both runs, so only the scores differ
    assert read_benchmark(tmp_path / "study" / "tables" / "b_shared.csv").models == tuple(saved["shared_models"])
    assert "| all | shared | SUP |" in format_study(result)


def test_study_script_is_quiet_unless_verbose(tmp_path):
    """`build_table.py study` printed ~35 INFO/WARNING lines before its table: now the table, where the
    details are, and nothing on stderr; --verbose logs the runs' notes as before."""
    from tests.test_hostile import run_cli

    lines = (ROOT / "data" / "ultrafeedback_sample.jsonl").read_text(encoding="utf-8").splitlines()[:40]
    data = tmp_path / "pool.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = ["study", "--table", "model_aware/lm_eval_table.csv", "--data", str(data)]
    code, out, err = run_cli("build_table.py", *args, "--output", str(tmp_path / "quiet"), env={"HF_HUB_OFFLINE": "1"})
    assert code == 0, err
    assert err == ""
    assert "| all | shared | SUP |" in out and f"details in {tmp_path / 'quiet'}: study.json" in out
    assert (tmp_path / "quiet" / "kall" / "shared" / "a_sup.json.meta.json").is_file()
    code, out, err = run_cli("build_table.py", *args, "--verbose", "--output", str(tmp_path / "loud"),
                             env={"HF_HUB_OFFLINE": "1"})
    assert code == 0, err
    assert "responses skipped, model not in" in err and "model_aware/benchmark.csv" in err
    saved = json.loads((tmp_path / "quiet" / "study.json").read_text())
    assert saved["comparisons"] == json.loads((tmp_path / "loud" / "study.json").read_text())["comparisons"]


def test_study_output_may_not_touch_its_inputs(tmp_path):
    from zebra.lmeval_study import check_study_output
    from zebra.settings import SettingError

    pool = tmp_path / "pool"
    pool.mkdir()
    (pool / "a.jsonl").write_text("{}\n")
    table = tmp_path / "study" / "mine.csv"
    table.parent.mkdir()
    table.write_text("Model,x\n")
    with pytest.raises(SettingError, match="into the input"):
        check_study_output(pool / "study", [None, str(pool)])  # the pool folder would gain the study's JSON
    with pytest.raises(SettingError, match="into the input"):
        check_study_output(tmp_path / "study", [str(table)])  # the table inside the study's folder
    with pytest.raises(SettingError, match="is a file"):
        check_study_output(table, [])
    check_study_output(tmp_path / "elsewhere", [str(table), str(pool), "openbmb/UltraFeedback"])


def read_records_count(path):
    return len(json.loads(Path(path).read_text(encoding="utf-8")))


@pytest.mark.slow
def test_readme_study_numbers_on_the_real_pool(tmp_path):
    """The README's study table (judged responses, K = 4 and all), recomputed."""
    from zebra.lmeval_study import run_study

    r = run_study(str(ROOT / "model_aware" / "lm_eval_table.csv"), str(ROOT / "model_aware" / "benchmark.csv"),
                  str(ROOT / "data" / "alpaca_eval"), str(tmp_path), ("sup", "sim"), 0.1, ks=(4, None), judged_only=True)
    assert round(r["spearman_mb_sup"]["shared"], 3) == 0.690 and round(r["spearman_mb_sup"]["as_is"], 3) == 0.786
    c = r["comparisons"]
    got = {name: (e["pairs"]["changed"], e["gpt4"]["a_all"]["agree"], e["gpt4"]["a_all"]["decided"],
                  e["gpt4"]["b_all"]["agree"], e["gpt4"]["b_all"]["decided"]) for name, e in c.items()}
    assert got["K=4/shared/sup"] == (139, 30, 106, 85, 99)
    assert got["K=4/shared/sim"] == (133, 35, 98, 72, 102)
    assert got["K=4/as_is/sup"] == (296, 30, 106, 79, 99)
    assert got["K=4/as_is/sim"] == (142, 35, 98, 60, 124)
    assert got["K=all/shared/sup"] == (403, 12, 215, 61, 73)
    assert got["K=all/as_is/sup"] == (403, 12, 215, 38, 50)
    assert got["K=all/shared/sim"][1:] == got["K=all/as_is/sim"][1:] == (61, 72, 63, 87)


@pytest.mark.slow
def test_readme_pairs_changed_on_the_whole_real_pool(tmp_path):
    """The README's pairs-changed table (every response, K = 4 and all), recomputed."""
    from zebra.lmeval_study import run_study

    r = run_study(str(ROOT / "model_aware" / "lm_eval_table.csv"), str(ROOT / "model_aware" / "benchmark.csv"),
                  str(ROOT / "data" / "alpaca_eval"), str(tmp_path), ("sup", "sim"), 0.1, ks=(4, None))
    got = {name: tuple(e["pairs"][k] for k in ("pairs_a", "pairs_b", "prompts_both", "same", "changed", "swapped"))
           for name, e in r["comparisons"].items()}
    assert got["K=4/shared/sup"] == (282, 328, 282, 154, 128, 81)
    assert got["K=4/shared/sim"] == (282, 328, 282, 154, 128, 76)
    assert got["K=4/as_is/sup"] == (282, 402, 282, 65, 217, 28)
    assert got["K=4/as_is/sim"] == (282, 402, 282, 93, 189, 16)
    assert {got[f"K=all/{v}/{s}"] for v in ("shared", "as_is") for s in ("sup", "sim")} == {(403, 403, 403, 0, 403, 0)}


def test_study_checks_n_boot_before_any_run(tmp_path):
    """--n-boot 0 ran the whole study (every binarize run) and then ended in a numpy traceback; analyze.py
    refuses it up front, and so does build_table.py study."""
    done = subprocess.run([sys.executable, "build_table.py", "study", "--table", "model_aware/benchmark.csv",
                           "--output-dir", str(tmp_path / "study"), "--n-boot", "0"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == "error: --n-boot must be >= 1, not 0"
    assert not (tmp_path / "study").exists()
