"""A long-format pool read in bounded memory (issue 23 §1): files a chunk of rows at a time, prompts
spilled to disk and converted a partition at a time, the result cached like UltraFeedback rows.
The cap on memory is a cap on rows held at once; the rows themselves are those of one pass."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from zebra import pools
from zebra.jsonio import ReadError, iter_json_record_chunks, iter_json_records
from zebra.pools import PoolError, PoolOptions, convert, load_pool, resolve

ROOT = Path(__file__).resolve().parent.parent
POOL = ROOT / "data" / "alpaca_eval"
AH = ROOT / "tests" / "data" / "arena_hard"


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def converted(tmp_path: Path, source, options: PoolOptions, chunk_rows: int, part_prompts: int):
    """(UltraFeedback rows, report, stats) of one conversion, no cache involved."""
    import datasets

    files, options = resolve(source, options)
    stats: dict = {}
    out = tmp_path / f"c{chunk_rows}-{part_prompts}.arrow"
    report = convert(files, options, out, tmp_path / f"spill{chunk_rows}-{part_prompts}", chunk_rows, part_prompts, stats)
    return datasets.Dataset.from_file(str(out)).to_list(), report, stats


@pytest.mark.parametrize("options", [
    PoolOptions(),
    PoolOptions(judged_only=True, models_per_prompt=4, seed=3),
    PoolOptions(judgments=str(POOL / "annotations_weighted_alpaca_eval_gpt4_turbo.jsonl"), model_names=None),
], ids=["plain", "judged-k4", "turbo-unmapped"])
def test_no_chunk_or_partition_exceeds_its_cap_and_the_rows_are_the_same(tmp_path, options):
    whole, report, _ = converted(tmp_path, POOL, options, 10**9, 10**9)
    small, small_report, stats = converted(tmp_path, POOL, options, 97, 5)
    assert 0 < stats["chunk_rows"] <= 97 and 0 < stats["part_prompts"] <= 5
    assert stats["part_rows"] <= 5 * 12  # the shipped pool: 12 responses a prompt
    assert small == whole and small_report == report


def test_the_id_join_in_chunks_is_the_same(tmp_path):
    options = PoolOptions(prompts=str(AH / "question.jsonl"), prompt_field="turns.0.content", model_field="model_id",
                          response_field="choices.0.turns.0.content", model_names=str(AH / "model_names.csv"),
                          judgments=str(AH / "model_judgment" / "gpt-4-1106-preview"), judgment_model_field="model",
                          judgment_value_field="games.0.score", skip_unmatched_judgments=True)
    whole = converted(tmp_path, AH / "model_answer", options, 10**9, 10**9)
    small = converted(tmp_path, AH / "model_answer", options, 2, 1)
    assert small[0] == whole[0] and small[1] == whole[1] and small[2]["chunk_rows"] == 2


def test_a_field_only_later_chunks_have_reads_as_a_whole_file(tmp_path):
    """A chunk without the score or source field: None there, as a whole-file read has it."""
    rows = [{"instruction": f"p{i // 2}", "generator": f"m{i % 2}", "output": f"r{i}"} for i in range(40)]
    rows[33]["judge"], rows[35]["dataset"] = 7, "late"
    data = write_jsonl(tmp_path / "pool.jsonl", rows)
    options = PoolOptions(score_field="judge")
    whole = converted(tmp_path, data, options, 10**9, 10**9)
    small = converted(tmp_path, data, options, 8, 3)
    assert small[0] == whole[0] and whole[0][17]["source"] == "late" and whole[0][16]["source"] is None
    assert [c["overall_score"] for c in whole[0][16]["completions"]] == [None, 7.0]


@pytest.mark.parametrize("case, message", [
    ("bad_model", "pool.jsonl: row 150: generator must be a non-empty string, got 5"),
    ("no_field", "pool.jsonl: no field 'output' (set --response-field)"),
    ("model_twice", "pool.jsonl: rows [4, 199]: model 'm1' answers one prompt twice"),
    ("bad_line", "pool.jsonl:120: the line ends inside a JSON value"),
])
def test_errors_name_the_files_rows_whatever_the_chunk(tmp_path, case, message):
    rows = [{"instruction": f"p{i // 2}", "generator": f"m{i % 2}", "output": f"r{i}"} for i in range(200)]
    if case == "bad_model":
        rows[149]["generator"] = 5
    elif case == "no_field":
        rows = [{k: v for k, v in r.items() if k != "output"} for r in rows]
    elif case == "model_twice":
        rows[198] = {"instruction": "p1", "generator": "m1", "output": "other"}
    data = write_jsonl(tmp_path / "pool.jsonl", rows)
    if case == "bad_line":
        lines = data.read_text().splitlines()
        lines[119] = lines[119][:-1]
        data.write_text("\n".join(lines) + "\n")
    for chunk in (10**9, 16):
        with pytest.raises(pools.ZebraError) as err:
            converted(tmp_path, data, PoolOptions(format="long"), chunk, 4)
        assert message in str(err.value) and "\n" not in str(err.value), (chunk, str(err.value))


def test_the_converted_pool_is_cached_by_content(tmp_path, monkeypatch):
    data = write_jsonl(tmp_path / "pool.jsonl", [{"instruction": "p", "generator": m, "output": m} for m in ("a", "b")])
    first = load_pool(data)
    calls = []
    real = pools.convert
    monkeypatch.setattr(pools, "convert", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = load_pool(data)
    assert calls == [] and again.dataset.to_list() == first.dataset.to_list() and again.report == first.report
    assert load_pool(data, limit=1).report["prompts"] == 1 and calls == []  # --limit reads the same cache
    write_jsonl(data, [{"instruction": "p", "generator": m, "output": m + "!"} for m in ("a", "b")])  # new bytes
    changed = load_pool(data)
    assert calls == [1] and [c["response"] for c in changed.dataset[0]["completions"]] == ["a!", "b!"]
    load_pool(data, PoolOptions(models_per_prompt=2))  # other options: another conversion
    assert calls == [1, 1]


def test_a_failed_conversion_leaves_no_cache(tmp_path):
    data = write_jsonl(tmp_path / "pool.jsonl", [{"instruction": "p", "generator": "a", "output": "x"},
                                                 {"instruction": "p", "generator": "a", "output": "y"}])
    files, options = resolve(data, PoolOptions())
    cache = pools._cache_folder(files, options)
    shutil.rmtree(cache, ignore_errors=True)
    with pytest.raises(PoolError):
        load_pool(data)
    assert not cache.exists() and not list(cache.parent.glob(f".{cache.name}-*"))


# --------------------------------------------------------------------------- the chunked JSON-lines reader


def test_json_lines_in_chunks_are_the_whole_files_records(tmp_path):
    rng = np.random.default_rng(0)
    rows = [{"i": i, "t": "é" * int(rng.integers(0, 300)) + "\u2028x"} for i in range(300)]
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps(r, ensure_ascii=False) + ("\n\n" if r["i"] % 7 == 0 else "\n")
                                               for r in rows).encode())
    whole = list(iter_json_records(path))
    for block in (64, 1000, 1 << 22):
        for size in (1, 7, 1000):
            chunks = list(iter_json_record_chunks(path, rows=size, block=block))
            assert [x for c in chunks for x in c] == whole and all(len(c) <= size for c in chunks)


@pytest.mark.parametrize("bad", [b'{"a": \xff}\n', b'{"a": 1, "a": 2}\n', b'{"a": NaN}\n', b'{"a": [1\n', b"5\n"])
def test_json_lines_in_chunks_fail_as_the_whole_file_does(tmp_path, bad):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"x": 0}\n' * 50 + bad + b'{"x": 1}\n')
    with pytest.raises(ReadError) as whole:
        list(iter_json_records(path))
    with pytest.raises(ReadError) as chunked:
        list(iter_json_record_chunks(path, rows=3, block=64))
    assert str(chunked.value) == str(whole.value) and ":51:" in str(whole.value)


def test_a_prompt_without_a_source_beside_one_with_it(tmp_path):
    """groupby's "first" gave the prompt without a source NaN, and building its row crashed
    (ArrowTypeError: Expected bytes, got a 'float' object), whole file or chunks alike."""
    data = write_jsonl(tmp_path / "pool.jsonl", [{"instruction": "a", "generator": "m", "output": "x"},
                                                 {"instruction": "b", "generator": "m", "output": "y", "dataset": "s"}])
    assert [row["source"] for row in load_pool(data).dataset] == [None, "s"]


def test_the_long_pool_benchmark_runs_and_finds_the_same_pairs(tmp_path):
    """benchmarks/long_pool_speed.py at a tiny size: both forms, cold and warm, the same pairs."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "benchmarks.long_pool_speed", "--rows", "300", "--response-words", "10",
                           "--repeat", "1", "--work-dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "long_pool_speed.partial.json").read_text(encoding="utf-8"))
    size = result["sizes"][0]
    assert size["same_pairs"]["same"] and size["same_pairs"]["pairs"] > 250
    assert set(size["runs"]) == {"ultrafeedback cold", "ultrafeedback warm", "long cold", "long warm"}
    assert all(run["peak_rss_mb"] > 0 and run["cpu_seconds"] > 0 for run in size["runs"].values())
    assert all(run["cpu_seconds_each"] == [run["cpu_seconds"]] for run in size["runs"].values())


def test_the_long_pool_benchmark_reports_the_run_of_median_cpu_time():
    from benchmarks.long_pool_speed import median_run

    tries = [{"cpu_seconds": c, "peak_rss_mb": m} for c, m in ((3.0, 10), (1.0, 30), (2.0, 20))]
    assert median_run(tries) == {"cpu_seconds": 2.0, "peak_rss_mb": 20, "cpu_seconds_each": [3.0, 1.0, 2.0]}
    two = median_run(tries[:2])  # of two, the upper one: the slower run is reported, never the faster
    assert (two["cpu_seconds"], two["peak_rss_mb"]) == (3.0, 10)


def test_a_killed_conversions_folder_is_removed_by_the_next(tmp_path):
    data = write_jsonl(tmp_path / "pool.jsonl", [{"instruction": "p", "generator": m, "output": m} for m in ("a", "b")])
    files, options = resolve(data, PoolOptions())
    cache = pools._cache_folder(files, options)
    shutil.rmtree(cache, ignore_errors=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    stale = cache.parent / f".{cache.name}-999999999-abcd"  # no such process
    (stale / "spill").mkdir(parents=True)
    load_pool(data)
    assert not stale.exists() and (cache / "pool.arrow").is_file()


# ---------------------------------------------------------------- pyarrow's reader (_ArrowLines)
# A cold conversion of JSON lines is read by pyarrow while its values are the strict reader's; at
# the first doubt the strict reader reads on. Whichever reads, the records and messages are the same.

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8)
_values = st.one_of(st.none(), _texts, st.integers(-2**70, 2**70), st.booleans(),
                    st.floats(allow_nan=True, allow_infinity=True), st.lists(st.integers(), max_size=2),
                    st.dictionaries(st.sampled_from("xy"), st.integers(), max_size=2))
_KINDS = {"text": _texts, "int": st.integers(-2**70, 2**70), "float": st.floats(allow_nan=True, allow_infinity=True),
          "number": st.one_of(st.integers(-2**70, 2**70), st.floats()), "bool": st.booleans(),
          "any": st.one_of(_texts, _values)}


@st.composite
def _records(draw):
    """Rows whose fields mostly keep one type each (what pyarrow reads), some fields of any type
    (where it must hand over), keys missing or null at random."""
    keys = ["instruction", "generator", "output", "dataset", "score", "n"]
    kinds = {k: draw(st.sampled_from(list(_KINDS) + ["text"] * 3)) for k in keys}
    row = st.fixed_dictionaries({}, optional={k: st.one_of(st.none(), _KINDS[kinds[k]]) for k in keys})
    return draw(st.lists(row, min_size=1, max_size=30))


def chunks(path: Path, rows: int, fast: bool) -> list[tuple[list[dict], int]]:
    """_read_chunks as (records without the keys a row lacks or holds null, first row number)."""
    out = []
    for df, start in pools._read_chunks(path, rows, fast):
        out.append(([{k: v for k, v in r.items() if v is not None} for r in df.to_dict("records")], start))
    return out


def outcome(path: Path, rows: int, fast: bool):
    try:
        got = chunks(path, rows, fast)
    except ReadError as err:
        return "error", str(err)
    return "rows", [(json.dumps(r, sort_keys=True), start) for c, start in got for r in c]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=_records(), rows=st.integers(1, 7), block=st.sampled_from([64, 256, 1 << 16]))
def test_pyarrows_reader_gives_the_strict_readers_records_and_errors(tmp_path, monkeypatch, records, rows, block):
    monkeypatch.setattr(pools._ArrowLines, "BLOCK", block)
    path = tmp_path / "pool.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")  # json.dumps: NaN as NaN
    assert outcome(path, rows, True) == outcome(path, rows, False)


def test_pyarrows_reader_reads_the_shipped_pool_whole(tmp_path, monkeypatch):
    """The fast reader must be what reads a plain pool: the test above passes if it never runs."""
    made = []
    real = pools._ArrowLines

    class Spy(real):
        def __iter__(self):
            yield from super().__iter__()
            made.append(self.complete)

    monkeypatch.setattr(pools, "_ArrowLines", Spy)
    path = POOL / "model_outputs.jsonl"
    fast = chunks(path, 1000, True)
    assert made == [True]
    assert fast == chunks(path, 1000, False)


@pytest.mark.parametrize("late", [
    {"instruction": 5, "generator": "m", "output": "r"},  # a text field that is a number: strict message
    {"instruction": "p", "generator": "m", "output": "r", "n": float("nan")},  # NaN: not JSON
    {"instruction": "p", "generator": "m", "output": "r", "n": 10**20},  # pyarrow: a float; JSON: an integer
    {"instruction": "p", "generator": "m", "output": "r", "n": 5},  # in a column of floats: 5.0 to pyarrow
    {"instruction": "p", "generator": "m", "output": "r", "n": {"deep": 1}},  # a type pyarrow would not keep
    {"instruction": "p", "generator": "m", "output": "r", "output2": "new"},  # a field the first block lacks
], ids=["number", "nan", "huge-int", "int-among-floats", "nested", "new-field"])
def test_a_doubt_after_the_first_block_hands_over_to_the_strict_reader(tmp_path, monkeypatch, late):
    monkeypatch.setattr(pools._ArrowLines, "BLOCK", 4096)
    rows = [{"instruction": f"p{i}", "generator": "m", "output": "x" * 50, "n": i + 0.5} for i in range(300)] + [late]
    path = tmp_path / "pool.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    seen = []
    real_iter = pools._ArrowLines.__iter__

    def spy(self):
        for df in real_iter(self):
            seen.append(len(df))
            yield df

    monkeypatch.setattr(pools._ArrowLines, "__iter__", spy)
    fast = outcome(path, 64, True)
    assert seen and sum(seen) < len(rows)  # pyarrow gave the first rows, the strict reader the rest
    assert fast == outcome(path, 64, False)


@pytest.mark.parametrize("options", [
    PoolOptions(),
    PoolOptions(judged_only=True, models_per_prompt=4, seed=3),
], ids=["plain", "judged-k4"])
def test_a_pool_converted_through_pyarrows_reader_is_the_strict_readers(tmp_path, monkeypatch, options):
    (tmp_path / "fast").mkdir(), (tmp_path / "strict").mkdir()
    fast = converted(tmp_path / "fast", POOL, options, 97, 5)
    monkeypatch.setattr(pools._ArrowLines, "__iter__", lambda self: iter(()))  # never complete: strict throughout
    strict = converted(tmp_path / "strict", POOL, options, 97, 5)
    assert fast[0] == strict[0] and fast[1] == strict[1]
