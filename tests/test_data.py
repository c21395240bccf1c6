"""zebra.data: which responses may enter a pair (usable_slots) and that the pairs depend on the SET of
(prompt, model, response) alone (SPEC §3): neither the order of rows nor of a row's completions,
nor of a long-format pool's lines, may change them. Property-based (hypothesis) on tiny tables
with ties, a model with a missing score, unknown and absent models, empty and repeated texts."""

import json
import re
import random
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zebra.behaviour import parse_benchmark_table
from zebra.data import to_batch
from zebra.pipeline import BinarizeConfig, Counts, process_batch
from zebra.pools import PoolOptions, load_pool

# m1 and m2 behave identically (equal MB-SUP, MB-SIM 1): only the tie rules tell them apart;
# m6 has a missing score (excluded); x1 is in no table.
TABLE = parse_benchmark_table(pd.DataFrame({
    "Model": ["m1", "m2", "m3", "m4", "m5", "m6"],
    "A": ["90", "90", "50", "40", "10", ""],
    "B": ["80", "80", "60", "30", "20", ""],
    "C": ["70", "70", "40", "60", "10", ""],
}), "tiny.csv")
MODELS = ["m1", "m2", "m3", "m4", "m5", "m6", "x1", None]
TEXTS = ["a", "b", "c", "", "  ", "a "]
RATINGS = ["1", "2", "3", "4", "5", "N/A"]
# every strategy, the baseline with both scores and with only rated models
RUNS = {"sup": {}, "sim": {}, "sim_least": {}, "sup_sim": {"rank_weight": 0.3, "similarity_weight": 0.8},
        "sup_tau": {"tau": 0.95}, "baseline": {"drop_sources": ("truthful_qa",)},
        "baseline_mean_rating": {"score": "mean-rating"}, "baseline_only_rated": {"only_rated": True}}

completion = st.fixed_dictionaries({
    "model": st.sampled_from(MODELS),
    "response": st.sampled_from(TEXTS),
    "overall_score": st.sampled_from([1.0, 2.0, 2.0, 3.0, None]),
    "annotations": st.fixed_dictionaries({a: st.fixed_dictionaries({"Rating": st.sampled_from(RATINGS)})
                                          for a in ("helpfulness", "honesty", "instruction_following", "truthfulness")}),
})
row = st.fixed_dictionaries({
    "source": st.sampled_from(["sharegpt", "truthful_qa"]),
    "instruction": st.sampled_from(["p", "q", "r", ""]),
    "completions": st.lists(completion, max_size=5),
})


def _strategy(name: str) -> str:
    return name.split("_tau")[0] if name.startswith("sup_tau") else name.split("_mean")[0].split("_only")[0]


def pairs_of(rows: list[dict], name: str, batch_size: int = 4096) -> tuple[list[str], dict]:
    """The records (sorted, as JSON) and the counts a run writes on `rows`, batch by batch."""
    cfg = BinarizeConfig(_strategy(name), "unused.json", progress=False, **RUNS[name])
    counts = Counts()
    table = pa.Table.from_pylist(rows)
    records = []
    for start in range(0, len(rows), batch_size):
        out = process_batch(to_batch(table.slice(start, batch_size)), TABLE, cfg, counts)
        records += [json.dumps(r, sort_keys=True) for r in out.to_pylist()]
    return sorted(records), counts.as_dict() | {"chosen_by_model": None, "rejected_by_model": None} | {
        "chosen": sorted(counts.chosen.items()), "rejected": sorted(counts.rejected.items())}


def shuffled(rows: list[dict], rng: random.Random) -> list[dict]:
    rows = [dict(r, completions=list(r["completions"])) for r in rows]
    rng.shuffle(rows)
    for r in rows:
        rng.shuffle(r["completions"])
    return rows


def same_pairs_in_any_order(rows, rng, batch_size):
    for name in RUNS:
        assert pairs_of(rows, name) == pairs_of(shuffled(rows, rng), name, batch_size), name


def _any_order(examples: int):
    # database=None: hypothesis keeps no example folder in the checkout
    return settings(max_examples=examples, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])(
        given(rows=st.lists(row, min_size=1, max_size=8), rng=st.randoms(use_true_random=False),
              batch_size=st.sampled_from([1, 3, 4096]))(same_pairs_in_any_order))


test_pairs_are_a_function_of_the_set_of_responses = _any_order(40)
test_pairs_are_a_function_of_the_set_of_responses_many = pytest.mark.slow(_any_order(1000))


def test_identical_texts_are_credited_to_the_best_ranked_model():
    """`Write "Test"` in the shipped pool: alpaca-7b (listed first) and gpt-4 answer `Test`. The
    copy of the model with the higher MB-SUP is kept, wherever it is listed."""
    for order in (["m5", "m3", "m4"], ["m4", "m3", "m5"], ["m3", "m5", "m4"]):
        texts = {"m5": "same", "m3": "same", "m4": "other"}
        rows = [{"instruction": "p", "completions": [{"model": m, "response": texts[m]} for m in order]}]
        records, counts = pairs_of(rows, "sup")
        assert [json.loads(r)["most_similar_pair"] for r in records] == [["m3", "m4"]]
        assert counts["responses"]["duplicate_response"] == 1


def test_a_model_answering_twice_differently_is_not_used():
    """Which of its two answers would be the model's? Neither: both are skipped and counted; two
    identical copies are one response."""
    rows = [{"instruction": "p", "completions": [{"model": "m1", "response": "x"}, {"model": "m3", "response": "y"},
                                                 {"model": "m1", "response": "z"}, {"model": "m4", "response": "w"}]}]
    records, counts = pairs_of(rows, "sup")
    assert [json.loads(r)["most_similar_pair"] for r in records] == [["m3", "m4"]]
    assert counts["responses"]["duplicate_model"] == 2
    rows[0]["completions"][2]["response"] = "x"  # now an exact copy: one response of m1
    records, counts = pairs_of(rows, "sup")
    assert [json.loads(r)["most_similar_pair"] for r in records] == [["m1", "m3"]]
    assert counts["responses"]["duplicate_model"] == 0 and counts["responses"]["duplicate_response"] == 1


def test_equal_objective_goes_to_the_models_table_order_not_the_slots():
    """m1 and m2 are indistinguishable by MB-SUP and MB-SIM: the pair of the model listed first in
    the table wins, whichever slot it is in."""
    for order in (["m1", "m2", "m3"], ["m2", "m1", "m3"], ["m3", "m2", "m1"]):
        rows = [{"instruction": "p", "completions": [{"model": m, "response": m} for m in order]}]
        assert [json.loads(r)["most_similar_pair"] for r in pairs_of(rows, "sim")[0]] == [["m1", "m2"]]
        assert [json.loads(r)["most_similar_pair"] for r in pairs_of(rows, "sup")[0]] == [["m1", "m2"]]
        assert [json.loads(r)["most_similar_pair"] for r in pairs_of(rows, "sim_least")[0]] == [["m1", "m3"]]


long_row = st.tuples(st.sampled_from(["p", "q", "r"]), st.sampled_from(["m1", "m2", "m3", "m4", "x1"]),
                     st.sampled_from(["a", "b", "c", ""]), st.sampled_from([1.0, 2.0, None]))


@settings(max_examples=15, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(long_row, min_size=1, max_size=12), rng=st.randoms(use_true_random=False))
def test_a_long_format_pool_in_any_line_order_gives_the_same_pairs(lines, rng):
    """One row per (prompt, model, response) with a score column; exact copies of a line included."""
    seen, unique = set(), []
    for p, m, text, score in lines:  # one answer per model and prompt (a second, different one is an error)
        if (p, m) not in seen:
            seen.add((p, m))
            unique.append({"instruction": p, "generator": m, "output": text, "judge": score})
    unique += unique[: len(unique) // 3]  # exact copies: dropped and counted
    other = list(unique)
    rng.shuffle(other)
    with tempfile.TemporaryDirectory() as folder:
        results = []
        for n, lines_ in enumerate((unique, other)):
            path = Path(folder) / f"pool{n}.jsonl"
            path.write_text("".join(json.dumps(x) + "\n" for x in lines_), encoding="utf-8")
            rows = load_pool(path, PoolOptions(score_field="judge")).dataset.to_list()
            results.append({name: pairs_of(rows, name) for name in RUNS if name != "baseline_mean_rating"})
    assert results[0] == results[1]


def test_mean_rating_asks_for_ratings_of_the_whole_run_not_of_each_batch(tmp_path):
    """A batch without any rating (here: rows without completions, batch size 1) made
    --score mean-rating fail, or not, depending on the batch size; a run whose data holds no rating
    at all (a long-format pool) is still refused with one line and no output."""
    from zebra.data import SAMPLE
    from zebra.errors import ZebraError
    from zebra.pipeline import binarize

    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()[:12]]
    rows[3]["completions"] = []
    rows[7]["completions"] = []
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    written = []
    for batch_size in (1, 5, 100):
        out = tmp_path / f"b{batch_size}.json"
        meta = binarize(BinarizeConfig("baseline", str(out), data=str(tmp_path / "d.jsonl"), score="mean-rating",
                                       batch_size=batch_size, progress=False))
        written.append((meta["counts"]["rows_written"], out.read_text()))
    assert written[0] == written[1] == written[2] and written[0][0] >= 8
    with pytest.raises(ZebraError, match="no .annotations. field; --score mean-rating needs it"):
        binarize(BinarizeConfig("baseline", str(tmp_path / "pool.json"), score="mean-rating", progress=False))
    assert not (tmp_path / "pool.json").exists()


# --------------------------------------------------------------------------- values of the wrong type

def _sample_rows(n=20):
    from zebra.data import SAMPLE

    return [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()[:n]]


def _binarize_rows(tmp_path, rows, strategy="sup", fmt="jsonl", **settings):
    from zebra.pipeline import binarize
    from zebra.records import read_records

    data = tmp_path / f"d{len(list(tmp_path.iterdir()))}.{fmt}"
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), data)
    else:
        data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / f"{data.stem}.out.jsonl"
    meta = binarize(BinarizeConfig(strategy, str(out), data=str(data), progress=False, **settings))
    text = out.read_text(encoding="utf-8")

    def no_constants(name):
        raise AssertionError(f"bare {name} in the records")

    for line in text.splitlines():
        json.loads(line, parse_constant=no_constants)  # strict JSON: no NaN / Infinity
    return meta, (read_records(out) if text else [])


@pytest.mark.parametrize("field, value", [("response", 42), ("response", ["a", "b"]), ("response", {"a": 1}),
                                          ("model", ["a", "b"]), ("model", 42), ("model", {"name": "gpt-4"})])
def test_one_value_of_another_type_spoils_nothing_else(tmp_path, field, value):
    """`datasets` types a field whose rows disagree in type as JSON text: one `response: 42` wrote 20
    of 20 chosen texts JSON-quoted ('"Also bard7…"'), one list-valued `model` made every model read as
    '"bard"' (0 pairs, exit 0). Every other value is read as it is; the odd one is counted, not used."""
    rows = _sample_rows()
    clean_meta, clean = _binarize_rows(tmp_path, rows)
    rows[0]["completions"][0][field] = value
    meta, records = _binarize_rows(tmp_path, rows)
    assert meta["counts"]["responses"]["not_text"] == 1
    assert clean_meta["counts"]["responses"]["not_text"] == 0
    assert [r for r in records if r["prompt"] != rows[0]["instruction"]] == \
        [r for r in clean if r["prompt"] != rows[0]["instruction"]]
    by_prompt = {r["instruction"]: {c["model"]: c["response"] for c in r["completions"] if isinstance(c["model"], str)}
                 for r in rows}
    for r in records:  # every text written is the response of the model named, as the file has it
        chosen, rejected = r["most_similar_pair"]
        assert r["chosen"][1]["content"] == by_prompt[r["prompt"]][chosen]
        assert r["rejected"][1]["content"] == by_prompt[r["prompt"]][rejected]


@pytest.mark.parametrize("value, fmt", [(float("inf"), "parquet"), (float("-inf"), "parquet"), (float("nan"), "parquet"),
                                        (True, "jsonl"), ("Infinity", "jsonl"), ([9], "jsonl")])
def test_a_score_that_is_not_a_finite_number_is_no_score(tmp_path, value, fmt):
    """`overall_score = inf` was chosen by the baseline and written as bare `Infinity` (not JSON).
    A Parquet file may hold inf and NaN as floats: no score, counted. (In a JSON file they are not
    JSON at all, and the file is refused: the test below.)"""
    rows = _sample_rows()
    rows[1]["completions"][0]["overall_score"] = value
    meta, records = _binarize_rows(tmp_path, rows, "baseline", fmt=fmt)
    assert meta["counts"]["responses"]["no_score"] == 1
    for r in records:
        assert all(np.isfinite(r[k]) for k in ("score_chosen", "score_rejected"))
    row = [r for r in records if r["prompt"] == rows[1]["instruction"]]
    assert all(rows[1]["completions"][0]["model"] not in r["most_similar_pair"] for r in row)


@pytest.mark.parametrize("value, message", [(float("inf"), ":2: Infinity is not JSON"), (float("-inf"), ":2: -Infinity is not JSON"),
                                            (float("nan"), ":2: NaN is not JSON"), (10**400, "beyond a float's range")])
def test_a_json_file_with_a_score_no_float_can_hold_is_refused(tmp_path, value, message):
    """NaN and Infinity are not JSON, and 10**400 is no float: one line naming the file, no output."""
    from zebra.data import DataError

    rows = _sample_rows()
    rows[1]["completions"][0]["overall_score"] = value
    with pytest.raises(DataError, match=re.escape(message)):
        _binarize_rows(tmp_path, rows, "baseline")
    assert not list(tmp_path.glob("*.out.jsonl*"))


def test_a_source_of_another_type_still_drops_truthful_qa(tmp_path):
    """One `source: 5` turned the column into JSON text, and '"truthful_qa"' was no longer dropped."""
    rows = _sample_rows()
    rows[4]["source"] = 5
    rows[8]["source"] = "truthful_qa"
    meta, records = _binarize_rows(tmp_path, rows, "baseline", drop_sources=("truthful_qa",))
    assert meta["counts"]["rows_skipped"]["dropped_source"] == 1
    assert rows[8]["instruction"] not in {r["prompt"] for r in records}


def test_a_rating_written_as_a_number_counts(tmp_path):
    """`"Rating": 4` beside `"Rating": "4"` made the field JSON text and the number was lost."""
    rows = _sample_rows()
    as_text = _binarize_rows(tmp_path, rows, "baseline", score="mean-rating")[1]
    for c in rows[2]["completions"]:
        c["annotations"]["helpfulness"]["Rating"] = int(c["annotations"]["helpfulness"]["Rating"])
    assert _binarize_rows(tmp_path, rows, "baseline", score="mean-rating")[1] == as_text


def test_a_prompt_of_another_type_is_skipped_and_the_others_read_as_written(tmp_path):
    rows = _sample_rows()
    clean = _binarize_rows(tmp_path, rows)[1]
    rows[3]["instruction"] = 7
    meta, records = _binarize_rows(tmp_path, rows)
    assert meta["counts"]["rows_skipped"]["empty_prompt"] == 1
    assert records == [r for r in clean if r["prompt"] != _sample_rows()[3]["instruction"]]


def test_has_ratings_is_false_without_an_annotations_field():
    """Rows made from a long-format pool have no `annotations` at all: no ratings, not an error
    (publish.py asks this of every pool; it stopped with 'completions have no annotations field')."""
    from zebra.data import iter_batches, locate, open_data, to_batch

    batch = to_batch(next(iter_batches(open_data(locate(), limit=3).dataset)))
    assert "annotations" not in batch.flat.type.names
    assert not batch.has_ratings()


@settings(max_examples=60, deadline=None, database=None)
@given(rows=st.lists(row, min_size=1, max_size=8), keep=st.lists(st.booleans(), min_size=8, max_size=8))
def test_model_codes_from_arrow_name_the_same_models_as_hashing_the_names(rows, keep):
    """to_batch takes each slot's model code from Arrow's dictionary of the names (the whole batch's,
    also for a shard's subset of rows); the rules compare codes, so they must split the slots exactly
    as the names do: equal code ⇔ equal name, −1 ⇔ no name."""
    from zebra.data import _factorize

    table = pa.Table.from_pylist(rows)
    subset = np.flatnonzero(keep[:len(rows)])
    for batch in (to_batch(table), to_batch(table, subset, ["id"] * subset.size)):
        codes, names = batch.model_codes
        expected, _ = _factorize(batch.model)
        assert codes.shape == batch.model.shape
        assert ((codes == -1) == np.equal(batch.model, None)).all()
        assert (codes[:, :, None] == codes[:, None, :]).tolist() == (expected[:, :, None] == expected[:, None, :]).tolist()
        assert [names[c] if c >= 0 else None for c in codes.ravel().tolist()] == batch.model.ravel().tolist()


@settings(max_examples=60, deadline=None, database=None)
@given(rows=st.lists(row, min_size=1, max_size=8), cuts=st.lists(st.integers(0, 8), max_size=4),
       strategy=st.sampled_from(list(RUNS)))
def test_a_batch_in_chunks_gives_what_one_chunk_gives(rows, cuts, strategy):
    """The cache hands a batch over in several chunks; to_batch flattens each in place and combines
    only the fields it reads. Split anywhere (empty chunks too), the slots, scores, ratings and
    records are those of the same rows in one chunk."""
    whole = pa.Table.from_pylist(rows)
    edges = sorted({0, len(rows), *[min(c, len(rows)) for c in cuts]})
    parts = [whole.slice(a, b - a) for a, b in zip(edges, edges[1:] + [len(rows)])]
    chunked = pa.concat_tables(parts)
    assert chunked.column("completions").num_chunks == len(parts)
    one, split = to_batch(whole.combine_chunks()), to_batch(chunked)
    for name in ("pos", "model", "nonempty", "byte_lengths", "not_text", "lengths"):
        assert getattr(split, name).tolist() == getattr(one, name).tolist(), name
    np.testing.assert_array_equal(split.scores(), one.scores())
    np.testing.assert_array_equal(split.ratings(), one.ratings())
    cfg = BinarizeConfig(_strategy(strategy), "unused.jsonl", "unused", progress=False, **RUNS[strategy])
    records = [process_batch(b, TABLE, cfg, Counts()) for b in (one, split)]
    assert records[0].to_pylist() == records[1].to_pylist()


def test_to_batch_combines_only_the_fields_binarize_reads():
    """Critiques and rationales are most of real UltraFeedback's bytes and binarize never reads them:
    to_batch must not copy them (it combined the whole completions struct of every batch)."""
    rows = [{**r, "completions": [{**c, "critique": "why " * 50} for c in r["completions"]]} for r in _sample_rows(8)]
    table = pa.Table.from_pylist(rows)
    table = pa.concat_tables([table.slice(0, 3), table.slice(3)])  # two chunks, as the cache gives them
    batch = to_batch(table)
    process_batch(batch, TABLE, BinarizeConfig("sup", "unused.jsonl", "unused", progress=False), Counts())
    assert "critique" in batch.flat.type.names
    assert set(batch.flat._fields) == {"model", "response"}
