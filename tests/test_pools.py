"""Long-format pools (zebra.pools): the shipped AlpacaEval pool, other layouts through flags alone,
the per-prompt draw, and one-line errors for ambiguous input."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zebra.errors import ZebraError
from zebra.pools import PoolError, PoolOptions, is_long, load_pool, read_model_names

ROOT = Path(__file__).resolve().parent.parent
POOL = ROOT / "data" / "alpaca_eval"


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_shipped_pool_reads_with_its_judgments():
    pool = load_pool(POOL)
    r = pool.report
    assert (r["rows"], r["prompts"], r["responses"]) == (4836, 403, 4836)
    # falcon's 403 judgments ship twice; 24 old-style draws (0) become 1.5; one null is a failure
    assert (r["judgment_rows"], r["judgment_duplicate_copies"]) == (3627, 403)
    assert (r["judgment_draws_coded_0"], r["judgment_draws"], r["judge_failures"]) == (24, 27, 1)
    assert r["labelled_responses"] == 8 * 403 - 1 and r["unmapped_model_names"] == {}
    assert r["judgment_reference"] == "text_davinci_003"
    first = pool.dataset[0]
    assert first["instruction"] == "What are the names of some famous actors that started their careers on Broadway?"
    by_model = {c["model"]: c["overall_score"] for c in first["completions"]}
    assert by_model["alpaca-7b"] == 1.0 and by_model["falcon-40b-instruct"] == 2.0
    assert by_model["vicuna-33b"] is None  # not judged by this judge
    assert first["source"] == "helpful_base" and len(first["models"]) == 12


def test_detection(tmp_path):
    assert is_long(POOL)
    assert not is_long(ROOT / "data" / "ultrafeedback_sample.jsonl")
    assert is_long(POOL / "model_outputs.jsonl")
    assert not is_long(POOL / "model_outputs.jsonl", PoolOptions(format="ultrafeedback"))
    other = write_jsonl(tmp_path / "p.jsonl", [{"q": "a", "llm": "m", "text": "t"}])
    assert not is_long(other) and is_long(other, PoolOptions(model_field="llm", response_field="text"))


def test_draw_is_per_prompt_and_independent_of_limit_and_order(tmp_path):
    rows = [json.loads(line) for line in (POOL / "model_outputs.jsonl").read_text(encoding="utf-8").splitlines()]
    k4 = PoolOptions(models_per_prompt=4, seed=7)
    full = load_pool(POOL, k4).dataset
    assert all(len(c) == 4 for c in full["completions"])
    drawn = {row["instruction"]: sorted(c["model"] for c in row["completions"]) for row in full}
    assert len({tuple(v) for v in drawn.values()}) > 50  # different prompts draw different models
    limited = load_pool(POOL, k4, limit=10).dataset
    assert len(limited) == 10 and all(drawn[r["instruction"]] == sorted(c["model"] for c in r["completions"]) for r in limited)
    shuffled = write_jsonl(tmp_path / "shuffled.jsonl", [rows[i] for i in np.random.default_rng(0).permutation(len(rows))])
    again = load_pool(shuffled, PoolOptions(models_per_prompt=4, seed=7, model_names=str(POOL / "model_names.csv"))).dataset
    assert {r["instruction"]: sorted(c["model"] for c in r["completions"]) for r in again} == drawn
    other_seed = load_pool(POOL, PoolOptions(models_per_prompt=4, seed=8)).dataset
    assert {r["instruction"]: sorted(c["model"] for c in r["completions"]) for r in other_seed} != drawn


def test_judged_only_keeps_the_judges_models():
    ds = load_pool(POOL, PoolOptions(judged_only=True)).dataset
    models = {c["model"] for row in ds for c in row["completions"]}
    assert models == {"gpt-4", "gpt-3.5-turbo", "llama-2-7b-chat", "llama-2-13b-chat", "llama-2-70b-chat",
                      "wizardlm-13b", "alpaca-7b", "falcon-40b-instruct"}
    assert all(c["overall_score"] is not None for row in ds for c in row["completions"])


def other_layout(tmp_path: Path) -> tuple[Path, Path]:
    """A pool with its own field names, a score column and names that need a map."""
    rows = []
    for p, prompt in enumerate(["Explain tides.", "Write a haiku.", "Sum 2+2."]):
        for m, (name, score) in enumerate([("GPT4-0314", 9), ("llama2-13b", 6), ("alpaca", 3), ("mystery-model", 8)]):
            rows.append({"question": prompt, "llm": name, "answer": f"{name} on {prompt} {m}", "judge_score": score - p})
    data = write_jsonl(tmp_path / "pool.jsonl", rows)
    names = tmp_path / "names.csv"
    names.write_text("pool,table\nGPT4-0314,gpt-4\nllama2-13b,llama-2-13b-chat\nalpaca,alpaca-7b\n", encoding="utf-8")
    return data, names


FLAGS = ["--instruction-field", "question", "--model-field", "llm", "--response-field", "answer"]


def test_other_layout_through_flags_alone(tmp_path):
    data, names = other_layout(tmp_path)
    common = ["--data", str(data), *FLAGS, "--model-names", str(names), "--score-field", "judge_score"]
    sup = tmp_path / "sup.jsonl"
    done = subprocess.run([sys.executable, "binarize_score.py", *common, "--output", str(sup)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    recs = [json.loads(line) for line in sup.read_text().splitlines()]
    assert [r["most_similar_pair"] for r in recs] == [["gpt-4", "llama-2-13b-chat"]] * 3
    meta = json.loads(Path(f"{sup}.meta.json").read_text())
    assert meta["counts"]["model_not_in_table"] == {"mystery-model": 3}  # unmapped: counted and named
    assert meta["pool"]["unmapped_model_names"] == {"mystery-model": 3}
    base = tmp_path / "base.jsonl"
    done = subprocess.run([sys.executable, "binarize_baseline.py", *common, "--output", str(base)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    recs = [json.loads(line) for line in base.read_text().splitlines()]
    assert [r["score_chosen"] for r in recs] == [9, 8, 7] and all(r["most_similar_pair"][0] == "gpt-4" for r in recs)


def test_score_judgments_file(tmp_path):
    data, names = other_layout(tmp_path)
    judged = write_jsonl(tmp_path / "j.jsonl", [{"question": "Sum 2+2.", "model": "alpaca", "s": 10},
                                                {"question": "Sum 2+2.", "model": "GPT4-0314", "s": None}])
    opts = PoolOptions(instruction_field="question", model_field="llm", response_field="answer", model_names=str(names),
                       judgments=str(judged), judgment_kind="score", judgment_model_field="model", judgment_value_field="s")
    pool = load_pool(data, opts)
    row = pool.dataset[2]
    assert {c["model"]: c["overall_score"] for c in row["completions"]} == {
        "gpt-4": None, "llama-2-13b-chat": None, "alpaca-7b": 10.0, "mystery-model": None}
    assert pool.report["judge_failures"] == 1


@pytest.mark.parametrize("case, message", [
    ("model_twice", "rows [1, 3]: a collision of model names: pool names 'a' → 'gpt-4' by --model-names and 'b' → "
                    "'gpt-4' by --model-names are both model 'gpt-4'"),
    ("name_mapped_twice", "names.csv:3: 'a' is mapped twice ('gpt-4' on line 2 and 'alpaca-7b')"),
    ("judgment_without_response", "row 1 judges model 'alpaca-7b' on a prompt the pool has no response of it for"),
    ("judgment_clash", "rows [1, 2] judge 'gpt-4' on one prompt with different values [2.0, 1.0]"),
    ("judgment_out_of_range", "row 1: preference 3.0 is outside [1, 2]"),
    ("two_references", "judgments against 2 references"),
    ("missing_field", "no field 'output' (set --response-field)"),
    ("k_one", "--models-per-prompt must be an integer of at least 2"),
])
def test_ambiguous_input_is_a_one_line_error(tmp_path, case, message):
    rows = [{"instruction": "p", "generator": "a", "output": "x"}, {"instruction": "p", "generator": "c", "output": "y"},
            {"instruction": "p", "generator": "b", "output": "z"}]
    names = tmp_path / "names.csv"
    names.write_text("pool,table\na,gpt-4\nb,gpt-4\n" if case == "model_twice" else "pool,table\na,gpt-4\nc,alpaca-7b\n")
    judgments = []
    opts = {}
    if case == "model_twice":
        rows = rows[:1] + rows[1:2] + rows[2:]
    elif case == "name_mapped_twice":
        names.write_text("pool,table\na,gpt-4\na,alpaca-7b\n")
    elif case == "judgment_without_response":
        judgments = [{"instruction": "other prompt", "generator_2": "c", "preference": 2}]
    elif case == "judgment_clash":
        judgments = [{"instruction": "p", "generator_2": "a", "preference": 2}, {"instruction": "p", "generator_2": "a", "preference": 1}]
    elif case == "judgment_out_of_range":
        judgments = [{"instruction": "p", "generator_2": "a", "preference": 3}]
    elif case == "two_references":
        judgments = [{"instruction": "p", "generator_1": "r1", "generator_2": "a", "preference": 2},
                     {"instruction": "p", "generator_1": "r2", "generator_2": "c", "preference": 1}]
    elif case == "missing_field":
        rows = [{k: v for k, v in r.items() if k != "output"} | {"text": "t"} for r in rows]
        opts["format"] = "long"
    elif case == "k_one":
        opts["models_per_prompt"] = 1
    data = write_jsonl(tmp_path / "pool.jsonl", rows)
    if judgments:
        opts["judgments"] = str(write_jsonl(tmp_path / "j.jsonl", judgments))
    with pytest.raises(PoolError) as err:
        load_pool(data, PoolOptions(model_names=str(names), **opts))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_copies_are_dropped_and_counted(tmp_path):
    row = {"instruction": "p", "generator": "gpt-4", "output": "x"}
    data = write_jsonl(tmp_path / "pool.jsonl", [row, row, {**row, "generator": "alpaca-7b", "output": "y"}])
    judged = write_jsonl(tmp_path / "j.jsonl", [{"instruction": "p", "generator_2": "gpt-4", "preference": 0.0}] * 2)
    pool = load_pool(data, PoolOptions(judgments=str(judged)))
    assert pool.report["duplicate_row_copies"] == 1 and pool.report["judgment_duplicate_copies"] == 1
    assert [c["overall_score"] for c in pool.dataset[0]["completions"]] == [1.5, None]  # AlpacaEval's 0 = a draw


def test_script_error_is_one_line(tmp_path):
    data = write_jsonl(tmp_path / "pool.jsonl", [{"instruction": "p", "generator": "gpt-4", "output": "x"},
                                                 {"instruction": "p", "generator": "gpt-4", "output": "y"}])
    out = tmp_path / "o.json"
    done = subprocess.run([sys.executable, "binarize_combined.py", "--data", str(data), "--output", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "Traceback" not in done.stderr and not out.exists()
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: {data}: rows [1, 2]: model 'gpt-4' answers")


def test_model_names_file():
    names = read_model_names(POOL / "model_names.csv")
    assert len(names) == 12 and names["gpt4"] == "gpt-4" and names["oasst-sft-pythia-12b"] == "pythia-12b"


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json"])
def test_other_file_types_read_the_same(tmp_path, suffix):
    import pandas as pd

    data, names = other_layout(tmp_path)
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    path = tmp_path / f"pool{suffix}"
    if suffix == ".csv":
        pd.DataFrame(rows).to_csv(path, index=False)
    elif suffix == ".parquet":
        pd.DataFrame(rows).to_parquet(path)
    else:
        path.write_text(json.dumps(rows))  # a JSON list, as AlpacaEval's model_outputs.json
    opts = PoolOptions(instruction_field="question", model_field="llm", response_field="answer",
                       model_names=str(names), score_field="judge_score")
    assert load_pool(path, opts).dataset.to_list() == load_pool(data, opts).dataset.to_list()
    # judgments with their own prompt field name
    judged = write_jsonl(tmp_path / "j.jsonl", [{"prompt": "Write a haiku.", "model": "alpaca", "s": 4}])
    opts = PoolOptions(instruction_field="question", model_field="llm", response_field="answer", model_names=str(names),
                       judgments=str(judged), judgment_kind="score", judgment_instruction_field="prompt",
                       judgment_model_field="model", judgment_value_field="s")
    assert [c["overall_score"] for c in load_pool(path, opts).dataset[1]["completions"]] == [None, None, 4.0, None]


def test_format_ultrafeedback_is_honoured_for_a_file_that_looks_long(tmp_path):
    """--format ultrafeedback means the UltraFeedback schema even when the first record has the
    pool's fields: the loader must not fall back to its own detection and read it as a pool."""
    from zebra.data import DataError
    from zebra.pipeline import BinarizeConfig, binarize

    data = write_jsonl(tmp_path / "long.jsonl", [{"instruction": "p", "generator": "gpt4", "output": "x"},
                                                  {"instruction": "p", "generator": "alpaca-7b", "output": "y"}])
    with pytest.raises(DataError, match="no 'completions' field"):
        binarize(BinarizeConfig("sup", str(tmp_path / "o.json"), data=str(data),
                                pool=PoolOptions(format="ultrafeedback")))
    assert not (tmp_path / "o.json").exists()


# --------------------------------------------------------------------------- issue 19 §5: messages that named the wrong rows


def test_conflicting_judgments_name_two_rows_of_one_prompt(tmp_path):
    """Rows 1 and 2 judge 'a' on two different prompts with equal values; each conflicts with a
    later row. The message must name two rows that really conflict (same prompt, same model)."""
    rows = [{"instruction": p, "generator": m, "output": f"{m} on {p}"} for p in ("p1", "p2") for m in ("a", "c")]
    data = write_jsonl(tmp_path / "pool.jsonl", rows)
    judged = write_jsonl(tmp_path / "j.jsonl", [
        {"instruction": "p1", "generator_2": "a", "preference": 1},
        {"instruction": "p2", "generator_2": "a", "preference": 1},
        {"instruction": "p1", "generator_2": "a", "preference": 2},
        {"instruction": "p2", "generator_2": "a", "preference": 2}])
    with pytest.raises(PoolError) as err:
        load_pool(data, PoolOptions(judgments=str(judged)))
    assert "rows [1, 3] judge 'a' on one prompt with different values [1.0, 2.0]" in str(err.value)


def test_two_pool_names_mapped_to_one_model_name_the_rows_that_clash(tmp_path):
    """'a' and 'b' both map to gpt-4 and answer p1 and p2: rows 1 and 2 are on different prompts,
    so the clash to name is rows 1 and 3 (p1), not the first two flagged rows."""
    rows = [{"instruction": "p1", "generator": "a", "output": "x1"}, {"instruction": "p2", "generator": "a", "output": "x2"},
            {"instruction": "p1", "generator": "b", "output": "y1"}, {"instruction": "p2", "generator": "b", "output": "y2"}]
    data = write_jsonl(tmp_path / "pool.jsonl", rows)
    names = tmp_path / "names.csv"
    names.write_text("pool,table\na,gpt-4\nb,gpt-4\n")
    with pytest.raises(PoolError) as err:
        load_pool(data, PoolOptions(model_names=str(names)))
    assert "rows [1, 3]: a collision of model names: pool names 'a' → 'gpt-4'" in str(err.value)
    assert "'p1'" in str(err.value)


def test_clash_across_two_files_names_each_rows_file(tmp_path):
    folder = tmp_path / "pool"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", [{"instruction": "p", "generator": "gpt-4", "output": "x"}])
    write_jsonl(folder / "b.jsonl", [{"instruction": "q", "generator": "gpt-4", "output": "z"},
                                     {"instruction": "p", "generator": "gpt-4", "output": "y"}])
    with pytest.raises(PoolError) as err:
        load_pool(folder, PoolOptions(format="long"))
    assert f"{folder / 'a.jsonl'} row 1 and {folder / 'b.jsonl'} row 2: model 'gpt-4' answers one prompt twice" in str(err.value)


def test_duplicate_key_in_a_long_pool_is_refused(tmp_path):
    """json.loads keeps the last of two equal keys: the model 'a' was silently read as 'b'."""
    data = tmp_path / "pool.jsonl"
    data.write_text('{"instruction": "p", "generator": "a", "output": "x"}\n'
                    '{"instruction": "p", "generator": "a", "generator": "b", "output": "y"}\n', encoding="utf-8")
    with pytest.raises(ZebraError) as err:
        load_pool(data)
    assert str(err.value) == (f"{data}:2: the key 'generator' appears twice in one object "
                              "(json keeps the last, datasets refuses the file); keep one")


def test_long_pool_with_a_byte_order_mark_is_read_as_a_pool(tmp_path):
    rows = [{"instruction": "p", "generator": "gpt4", "output": "x"}, {"instruction": "p", "generator": "alpaca-7b", "output": "y"}]
    data = tmp_path / "bom.jsonl"
    data.write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps(r) + "\n" for r in rows).encode())
    assert is_long(data)
    assert [c["model"] for c in load_pool(data).dataset[0]["completions"]] == ["gpt4", "alpaca-7b"]


def test_model_names_csv_rows_are_file_lines(tmp_path):
    """A quoted name with a line break inside takes two lines: the error names the file line."""
    names = tmp_path / "names.csv"
    names.write_text('pool,table\n"odd\nname",gpt-4\na,gpt-4\na,bard\n', encoding="utf-8")
    with pytest.raises(PoolError, match=r"names.csv:5: 'a' is mapped twice \('gpt-4' on line 4 and 'bard'\)"):
        read_model_names(names)


def test_model_names_csv_that_is_not_utf8_is_one_line(tmp_path):
    names = tmp_path / "names.csv"
    names.write_bytes("pool,table\nalpaca,alpaca-7b\ncafé,gpt-4\n".encode("latin-1"))
    with pytest.raises(ZebraError) as err:
        read_model_names(names)
    assert str(err.value) == f"{names}:3: not UTF-8 text (byte 31: invalid continuation byte); save it as UTF-8"


@pytest.mark.parametrize("case, message", [
    ("two_sources", "rows [1, 2]: prompt 'p' has two sources ('a', 'b')"),
    ("copies_with_two_scores", "rows [1, 2]: model 'gpt-4' gives one response on prompt 'p' two scores (3.0, 5.0)"),
])
def test_the_first_row_decides_nothing(tmp_path, case, message):
    """Which row came first decided a prompt's source (and so whether --drop-sources drops it) and
    which score an exact copy kept; a pool in another order gave other pairs. Now: one line naming both."""
    rows = [{"instruction": "p", "generator": "gpt-4", "output": "x", "dataset": "a", "judge": 3},
            {"instruction": "p", "generator": "alpaca-7b", "output": "y", "dataset": "a", "judge": 1}]
    if case == "two_sources":
        rows[1]["dataset"] = "b"
    else:
        rows[1] = dict(rows[0], judge=5)
    for order in (rows, rows[::-1]):
        with pytest.raises(PoolError) as err:
            load_pool(write_jsonl(tmp_path / "pool.jsonl", order), PoolOptions(score_field="judge"))
        assert message in str(err.value) and "\n" not in str(err.value)


def test_a_source_on_some_rows_only_is_the_prompts_source(tmp_path):
    rows = [{"instruction": "p", "generator": "gpt-4", "output": "x", "dataset": None},
            {"instruction": "p", "generator": "alpaca-7b", "output": "y", "dataset": "truthful_qa"}]
    for order in (rows, rows[::-1]):
        assert load_pool(write_jsonl(tmp_path / "pool.jsonl", order)).dataset[0]["source"] == "truthful_qa"


@pytest.mark.parametrize("field, value, message", [
    ("judge", 10**400, "row 2: judge 1" ),
    ("dataset", 5, "row 2: dataset must be a string or null, got 5"),
    ("dataset", {"a": 1}, "row 2: dataset must be a string or null, got {'a': 1}"),
])
def test_pool_values_of_the_wrong_kind(tmp_path, field, value, message):
    """A score beyond any float was an OverflowError traceback; a source that is not text became
    the string "{'a': 1}" (or "5")."""
    rows = [{"instruction": "p", "generator": "gpt-4", "output": "x", "dataset": "a", "judge": 1},
            {"instruction": "p", "generator": "alpaca-7b", "output": "y", "dataset": "a", "judge": 2}]
    rows[1][field] = value
    path = tmp_path / "pool.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(PoolError) as err:
        load_pool(path, PoolOptions(score_field="judge"))
    assert message in str(err.value) and "\n" not in str(err.value)


@settings(max_examples=80, deadline=None, database=None)
@given(st.integers(-2**40, 2**40), st.lists(st.tuples(st.sampled_from(["p", "q", "é€😀", ""]),
                                                       st.sampled_from(["m1", "m2", "ünï", None, 3])), max_size=12))
def test_draw_keys_are_the_documented_sha256_prefix(seed, slots):
    """The draw's keys (--models-per-prompt, the baseline's ties and rejected draw) are read from
    the digests all at once; each must be int(first 7 bytes of sha256(seed\\0prompt\\0model)) / 2**56,
    as draw_keys defines it, for prompts that repeat apart and names of any type."""
    import hashlib

    from zebra.pools import draw_keys

    prompts = np.array([p for p, _ in slots], dtype=object)
    models = np.array([m for _, m in slots], dtype=object)
    expected = [int.from_bytes(hashlib.sha256(f"{seed}\0{p}\0{m}".encode()).digest()[:7], "big") / 2**56 for p, m in slots]
    assert draw_keys(seed, prompts, models).tolist() == expected
