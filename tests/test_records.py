"""zebra.records: the hand-written Arrow JSON encoder against json.dumps, and writer → reader round trips.

The encoder escapes strings column by column with Arrow kernels; dropping its `\\b` escape once
wrote a raw 0x08 byte and 254 tests passed (issue 19 §7). These properties compare it with
json.dumps over every control character, quotes, backslashes, non-ASCII text, floats (NaN and
±inf are written as null: the README's promise that no output holds bare NaN/Infinity) and the
nested lists of structs the records have.
"""

from __future__ import annotations

import json
import math

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zebra.errors import ZebraError
from zebra.jsonio import read_json_records
from zebra.records import RecordWriter, json_lines, json_values, read_records

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# every character JSON must escape or may not: all of 0x00-0x1f, quote, backslash, DEL, the
# line separators JSON keeps raw, non-ASCII of 2, 3 and 4 UTF-8 bytes
TRICKY = "".join(chr(c) for c in range(0x20)) + '"\\/\x7f\u2028\u2029é€😀'
texts = st.text(alphabet=st.sampled_from(TRICKY) | st.characters(blacklist_categories=("Cs",)), max_size=12)
floats = st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-320, 1e308, 0.1]) | st.floats()
MESSAGES = pa.list_(pa.struct([("content", pa.string()), ("role", pa.string())]))


def finite(value):
    """What the writer promises: json.dumps of the value with every non-finite float as null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


@st.composite
def tables(draw):
    n = draw(st.integers(min_value=1, max_value=6))
    maybe = lambda s: st.one_of(st.none(), s)  # noqa: E731
    message = st.fixed_dictionaries({"content": maybe(texts), "role": maybe(texts)})
    columns = {
        "prompt": pa.array(draw(st.lists(maybe(texts), min_size=n, max_size=n)), pa.string()),
        "most_similar_pair": pa.array(draw(st.lists(maybe(st.lists(maybe(texts), max_size=3)), min_size=n, max_size=n)),
                                      pa.list_(pa.string())),
        "chosen": pa.array(draw(st.lists(maybe(st.lists(maybe(message), max_size=3)), min_size=n, max_size=n)), MESSAGES),
        "kinship_rank": pa.array(draw(st.lists(maybe(st.integers(-2**63, 2**63 - 1)), min_size=n, max_size=n)), pa.int64()),
        "mb_sim": pa.array(draw(st.lists(maybe(floats), min_size=n, max_size=n)), pa.float64()),
        "flag": pa.array(draw(st.lists(maybe(st.booleans()), min_size=n, max_size=n)), pa.bool_()),
        "nested": pa.array(draw(st.lists(maybe(st.lists(maybe(st.lists(maybe(floats), max_size=2)), max_size=2)),
                                         min_size=n, max_size=n)), pa.list_(pa.list_(pa.float64()))),
        draw(texts): pa.array(draw(st.lists(maybe(texts), min_size=n, max_size=n)), pa.large_string()),
    }
    return pa.table(columns)


@FAST
@given(tables())
def test_arrow_encoder_writes_what_json_dumps_writes(table):
    rows = table.to_pylist()
    assert json_lines(table).to_pylist() == [json.dumps(finite(r), ensure_ascii=False) for r in rows]
    for name in table.column_names:
        column = table.column(name)
        assert json_values(column).to_pylist() == [json.dumps(finite(v), ensure_ascii=False) for v in column.to_pylist()]


@FAST
@given(tables(), st.sampled_from(["jsonl", "json"]), st.booleans())
def test_writer_then_reader_round_trip(tmp_path, table, fmt, columnar):
    """Both write paths (an Arrow table, a list of dicts) give bytes the strict reader reads back
    as the records, non-finite floats as null; the file holds no raw control character."""
    path = tmp_path / f"r.{fmt}"
    with RecordWriter(path) as writer:
        writer.write(table if columnar else table.to_pylist())
    raw = path.read_bytes()
    assert not any(b < 0x20 and b not in b"\n" for b in raw)
    assert read_json_records(path) == [finite(r) for r in table.to_pylist()]
    assert read_records(path) == [finite(r) for r in table.to_pylist()]


def test_control_characters_one_by_one():
    """Each of the 32 control characters on its own (a missing escape shows which one)."""
    for code in range(0x20):
        text = f"a{chr(code)}b"
        assert json_values(pa.array([text])).to_pylist() == [json.dumps(text, ensure_ascii=False)], hex(code)


def test_non_finite_floats_are_null_in_both_write_paths(tmp_path):
    """issue 19 §2: an `overall_score` of inf reached the records as bare `Infinity`."""
    table = pa.table({"score_chosen": [1.5, float("inf"), float("-inf"), float("nan")]})
    for columnar in (True, False):
        path = tmp_path / f"s{columnar}.jsonl"
        with RecordWriter(path) as writer:
            writer.write(table if columnar else table.to_pylist())
        assert path.read_text().splitlines() == ['{"score_chosen": 1.5}'] + ['{"score_chosen": null}'] * 3


def test_a_lone_surrogate_is_refused_by_the_writer_in_one_line(tmp_path):
    path = tmp_path / "s.jsonl"
    with pytest.raises(ZebraError) as err:
        with RecordWriter(path) as writer:
            writer.write([{"prompt": "ok"}, {"prompt": "p", "chosen": [{"content": "x\ud800", "role": "assistant"}]}])
    assert str(err.value) == f"{path}: record 2: chosen[0].content holds a lone surrogate, which UTF-8 cannot encode"
    assert list(tmp_path.iterdir()) == []


@st.composite
def fixed_lists(draw):
    """Lists of one length in every row (the records' chosen and rejected: the encoder reads their
    items' texts in place, _fixed_lists), nulls inside, and arrays that are slices of larger ones."""
    n, k, cut = draw(st.integers(1, 6)), draw(st.integers(0, 3)), draw(st.integers(0, 2))
    maybe = lambda s: st.one_of(st.none(), s)  # noqa: E731
    message = maybe(st.fixed_dictionaries({"content": maybe(texts), "role": texts}))
    rows = draw(st.lists(st.lists(message, min_size=k, max_size=k), min_size=n + cut, max_size=n + cut))
    names = draw(st.lists(st.lists(maybe(texts), min_size=k, max_size=k), min_size=n + cut, max_size=n + cut))
    table = pa.table({"chosen": pa.array(rows, MESSAGES), "pair": pa.array(names, pa.list_(pa.large_string()))})
    return table.slice(cut, n)


@FAST
@given(fixed_lists())
def test_lists_of_one_length_are_written_as_json_dumps_writes_them(table):
    rows = table.to_pylist()
    assert json_lines(table, "\n").to_pylist() == [json.dumps(r, ensure_ascii=False) + "\n" for r in rows]


@pytest.mark.parametrize("text", ["plain", 'a "quote"', "back\\slash", "tab\tonly", "form\ffeed", "bell\x07",
                                  "all \" \\ \n \r \t \b \f \x00 \x1f", "é€😀\n", "\x1f\n\x1f"])
def test_each_escape_alone_or_with_the_others(text):
    """The escapes are inserted in one pass over the bytes, and values with a \\u00XX control
    character are rewritten whole: a column of one kind of escape, beside values that need none,
    nulls and empty texts, sliced out of a larger array, is still json.dumps's."""
    column = pa.array(["cut\n", text, "none", None, "", text + text, "cut\x01"])[1:-1]
    assert json_values(column).to_pylist() == [json.dumps(v, ensure_ascii=False) for v in column.to_pylist()]


def test_the_encode_benchmark_runs_and_writes_json_dumps_bytes(tmp_path):
    """benchmarks/encode_speed.py, the README's real-text measurement, once: the Arrow encoder and
    json.dumps write the same bytes for the shipped AlpacaEval records, and the result says so."""
    from benchmarks.encode_speed import main

    out = tmp_path / "enc.json"
    result = main(["--repeats", "1", "--output", str(out)])
    assert result["same_bytes"] is True and result["records"] > 4000
    assert result["chosen_responses_with"]["newline"] > 1000  # real text: the escapes are exercised
    assert json.loads(out.read_text())["cpu_seconds"].keys() == {"arrow", "json.dumps"}


@FAST
@given(st.lists(st.one_of(st.none(), texts), min_size=1, max_size=6), st.integers(1, 9))
def test_escapes_across_the_scan_steps(monkeypatch, column, step):
    """The escape scan walks the bytes in steps (_SCAN_BYTES, 256 KiB in a run): with steps of a few
    bytes, escapes fall on, before and after every step's edge, and the text is still json.dumps's."""
    from zebra import records

    monkeypatch.setattr(records, "_SCAN_BYTES", step)
    arr = pa.array(column, pa.string())
    assert json_values(arr).to_pylist() == [json.dumps(v, ensure_ascii=False) for v in column]


@FAST
@given(st.lists(texts, max_size=8), st.integers(0, 8), st.integers(0, 8), st.sampled_from([pa.string(), pa.large_string()]))
def test_joined_bytes_are_a_slices_texts_back_to_back(values, a, b, kind):
    """The writer's lines (large_string) and the speed benchmark's cached chunks (string) are read in
    place by their offsets: for a slice, only its own values' bytes."""
    from zebra.records import _joined_bytes

    arr = pa.array(values, kind).slice(min(a, len(values)), b)
    assert bytes(_joined_bytes(arr)) == "".join(arr.to_pylist()).encode()
