"""zebra.jsonio: one reader for JSON documents and JSON records, one error style (`FILE:LINE: reason`)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zebra.jsonio import (MAX_DEPTH, ReadError, check_json_data, first_json_record, iter_json_records, read_json,
                          read_json_records, read_text, read_yaml)

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def put(tmp_path: Path, name: str, data: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


# (file name, bytes, the whole message after "FILE") for iter_json_records
RECORD_FAULTS = [
    ("gzip.jsonl", gzip.compress(b'{"a": 1}\n'), ": gzip-compressed: decompress it first (gunzip)"),
    ("zip.jsonl", b"PK\x03\x04rest", ": a zip archive: unpack it first"),
    ("parquet.jsonl", b"PAR1\x15\x04", ": a Parquet file, not text: name it .parquet"),
    ("utf16.jsonl", '{"a": 1}\n'.encode("utf-16"), ": UTF-16 text: save it as UTF-8"),
    ("nul.jsonl", b'{"a": 1}\n\x00\x00', ": binary, not text (a NUL byte at byte 9)"),
    ("xff.jsonl", b'{"a": 1}\n{"a": "x\xff"}\n', ":2: not UTF-8 text (byte 17: invalid start byte); save it as UTF-8"),
    ("empty.jsonl", b"", ": empty file (0 bytes)"),
    ("blank.jsonl", b"\n  \n\r\n", ": no records (only blank lines)"),
    ("empty_list.json", b" [ ]\n", ": no records (an empty list)"),
    ("truncated.jsonl", b'{"a": 1}\n{"a": "xy', ":2: the line ends inside a JSON value (Unterminated string starting): truncated?"),
    ("truncated_list.json", b'[{"a": 1},\n {"a": 2}', ":2: the file ends inside the JSON list: truncated?"),
    ("cut_list.json", b'[{"a": 1},\n {"a": ', ":2: the file ends inside a JSON value (Expecting value): truncated?"),
    ("bad.jsonl", b'{"a": 1}\n{"a" 1}\n', ":2: not valid JSON (Expecting ':' delimiter at column 6)"),
    ("extra.json", b'[{"a": 1}]\n]', ":2: not valid JSON (extra data after the list)"),
    ("control.jsonl", b'{"a": "x\x08y"}\n', ":1: not valid JSON (Invalid control character at column 9)"),
    ("number.jsonl", b'{"a": 1}\n5\n', ":2: expected a JSON object, got a number (5)"),
    ("string_item.json", b'[{"a": 1},\n "x"]', ":2: list item expected to be a JSON object, got a string ('x')"),
    ("null.jsonl", b"null\n", ":1: expected a JSON object, got null"),
    ("one_object.json", b'{\n "a": 1\n}\n', ": holds one JSON object over several lines; expected a JSON list of records "
     "or one object per line"),
    ("duplicate.jsonl", b'{"a": 1}\n{"a": 1, "b": {"c": 1, "c": 2}}\n',
     ":2: the key 'c' appears twice in one object (json keeps the last, datasets refuses the file); keep one"),
    ("duplicate_list.json", b'[{"a": 1},\n {"a": 1,\n  "a": 2}]',
     ":3: the key 'a' appears twice in one object (json keeps the last, datasets refuses the file); keep one"),
    ("nan.jsonl", b'{"a": 1}\n{"a": NaN}\n', ":2: NaN is not JSON; write null or a number"),
    ("infinity_list.json", b'[{"a": 1,\n  "b": -Infinity}]', ":2: -Infinity is not JSON; write null or a number"),
    ("huge.jsonl", b'{"a": 1e999}\n', ":1: the number 1e999 is too large for a float"),
    ("surrogate.jsonl", b'{"a": 1}\n{"a": {"b": ["ok", "\\ud800"]}}\n',
     ":2: a.b[1] holds a lone surrogate (\\ud800), which is not Unicode text and cannot be written back; fix or drop that text"),
    ("surrogate_key.jsonl", b'{"\\udc00x": 1}\n', ":1: the key '\\\\udc00x' holds a lone surrogate (\\udc00), which is not "
     "Unicode text and cannot be written back; fix or drop that text"),
    ("deep.jsonl", b'{"a": 1}\n' + b"[" * 100_000 + b"]" * 100_000 + b"\n",
     f":2: nested deeper than {MAX_DEPTH} levels (the limit is zebra.jsonio.MAX_DEPTH; no record the project reads needs more)"),
    ("deep_list.json", b"[\n" + b'{"a": ' + b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1) + b"}]",
     f":2: nested deeper than {MAX_DEPTH} levels (the limit is zebra.jsonio.MAX_DEPTH; no record the project reads needs more)"),
]


@pytest.mark.parametrize("name, data, message", RECORD_FAULTS, ids=[c[0] for c in RECORD_FAULTS])
def test_record_faults_are_one_line_naming_file_and_line(tmp_path, name, data, message):
    path = put(tmp_path, name, data)
    with pytest.raises(ReadError) as err:
        read_json_records(path)
    assert str(err.value) == f"{path}{message}"


def test_what_is_accepted(tmp_path):
    rows = [{"a": 1, "text": "é\u2028x"}, {"b": [1, 2.5, None, True], "c": "\U0001F600"}]
    lines = "".join(json.dumps(r) + "\n" for r in rows)
    assert read_json_records(put(tmp_path, "a.jsonl", lines)) == rows
    assert read_json_records(put(tmp_path, "crlf.jsonl", lines.replace("\n", "\r\n") + "\r\n\n")) == rows
    assert read_json_records(put(tmp_path, "bom.jsonl", b"\xef\xbb\xbf" + lines.encode())) == rows  # a BOM is dropped
    assert read_json_records(put(tmp_path, "list.jsonl", json.dumps(rows, indent=2))) == rows  # by content, not suffix
    assert read_json_records(put(tmp_path, "escaped.jsonl", '{"a": "\\\\ud800"}\n')) == [{"a": "\\ud800"}]  # text, not a surrogate
    depth = put(tmp_path, "deep_ok.jsonl", '{"a": ' + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "}\n")
    assert len(read_json_records(depth)) == 1
    assert [n for n, _ in iter_json_records(put(tmp_path, "gaps.jsonl", '\n{"a": 1}\n\n{"a": 2}\n'))] == [2, 4]
    assert [n for n, _ in iter_json_records(put(tmp_path, "l.json", '[\n{"a": 1},\n\n {"a": 2}]'))] == [2, 4]
    assert read_json_records(put(tmp_path, "empty.json", "[]"), allow_empty=True) == []


def test_documents(tmp_path):
    assert read_json(put(tmp_path, "s.json", b'\xef\xbb\xbf{"a": [1, {"b": null}]}')) == {"a": [1, {"b": None}]}
    for name, data, message in [
        ("missing.json", None, ": no such summary"),
        ("list.json", "[1]", ": expected a JSON object, got a list of 1"),
        ("blank.json", "  \n", ": holds only blank lines, no JSON"),
        ("lines.json", '{"a": 1}\n{"a": 2}\n', ":2: not valid JSON (extra data after the JSON value at column 1)"),
        ("inf.json", '{"x": 1,\n "y": Infinity}', ":2: Infinity is not JSON; write null or a number"),
        ("dup.json", '{"a": {"a": 1},\n "b": 2,\n "a": 3}', ":3: the key 'a' appears twice in one object "
         "(json keeps the last, datasets refuses the file); keep one"),
        ("deep.json", '{"a":\n' + "[" * 5000 + "]" * 5000 + "}", f":2: nested deeper than {MAX_DEPTH} levels"),
    ]:
        path = tmp_path / name
        if data is not None:
            path.write_text(data, encoding="utf-8")
        with pytest.raises(ReadError) as err:
            read_json(path, "summary", expect=dict)
        assert str(err.value).startswith(f"{path}{message}"), str(err.value)
    with pytest.raises(ReadError, match="is a folder, not a summary"):
        read_json(tmp_path, "summary")


def test_yaml(tmp_path):
    assert read_yaml(put(tmp_path, "r.yaml", "a: 1\nb: [x, y]\n"), expect=dict) == {"a": 1, "b": ["x", "y"]}
    cases = [
        ("latin.yaml", "a: café\n".encode("latin-1"), ":1: not UTF-8 text (byte 6: invalid continuation byte); save it as UTF-8"),
        ("list.yaml", b"- a\n- b\n", ": expected a YAML mapping, got a list of 2"),
        ("python.yaml", b"a: !!python/object:os.system {}\n", ":1: the YAML tag !!python/object:os.system is not allowed "
         "(only plain data: mappings, lists, strings, numbers)"),
        ("bad.yaml", b"a: 1\nb: [x,\n", ":3: not valid YAML (while parsing a flow node: expected the node content, but found '<stream end>')"),
        ("dup.yaml", b"a: 1\na: 2\n", ":2: the key 'a' appears twice in one mapping; keep one"),
    ]
    for name, data, message in cases:
        path = put(tmp_path, name, data)
        with pytest.raises(ReadError) as err:
            read_yaml(path, expect=dict)
        assert str(err.value) == f"{path}{message}", str(err.value)


def test_first_record_reads_only_what_it_needs(tmp_path):
    assert first_json_record(put(tmp_path, "a.jsonl", b'\xef\xbb\xbf\n{"a": 1}\n{"broken": \n')) == {"a": 1}
    assert first_json_record(put(tmp_path, "b.json", '[{"a": "' + "x" * 200_000 + '"}, {"b"')) == {"a": "x" * 200_000}
    assert first_json_record(put(tmp_path, "c.json", "[]")) is None
    assert first_json_record(put(tmp_path, "d.json", "[5]")) is None
    assert first_json_record(put(tmp_path, "e.jsonl", "not json\n")) is None  # the full read says why
    with pytest.raises(ReadError, match="gzip-compressed"):
        first_json_record(put(tmp_path, "f.jsonl", gzip.compress(b'{"a": 1}\n')))
    with pytest.raises(ReadError, match=":1: the key 'a' appears twice"):
        first_json_record(put(tmp_path, "g.jsonl", '{"a": 1, "a": 2}\n'))


def test_text_layer(tmp_path):
    assert read_text(put(tmp_path, "t.csv", b"\xef\xbb\xbfa,b\n")) == "a,b\n"
    with pytest.raises(ReadError, match=r"t2.csv:2: not UTF-8 text \(byte 4: invalid start byte\)"):
        read_text(put(tmp_path, "t2.csv", b"a,b\n\xff,c\n"))


# ----------------------------------------------------------------------------- what datasets reads


@pytest.mark.parametrize("name, data, message", [
    ("deep.jsonl", b'{"a": 1}\n' + b"[" * 100_000 + b"]" * 100_000 + b"\n", ":2: nested deeper than"),
    ("deep_unclosed.jsonl", b'{"a": 1}\n{"a": ' + b"[" * 100_000 + b"\n", ":2: nested deeper than"),
    ("gzip.jsonl", gzip.compress(b'{"a": 1}\n'), ": gzip-compressed: decompress it first (gunzip)"),
    ("xff_nan.jsonl", b'{"a": "\xff", "b": NaN}\n', ":1: not UTF-8 text (byte 7: invalid start byte)"),
    # pyarrow copies bytes that are not UTF-8 into its strings without a word: refused here
    ("latin1.jsonl", b'{"a": 1}\n{"a": "caf\xe9"}\n', ":2: not UTF-8 text (byte 19: invalid continuation byte)"),
    ("dup_list.json", b'[{"a": 1, "a": 2}]', ":1: the key 'a' appears twice"),
])
def test_check_json_data_refuses_what_pyarrow_crashes_on_or_reads_wrongly(tmp_path, name, data, message):
    path = put(tmp_path, name, data)
    with pytest.raises(ReadError) as err:
        check_json_data(path)
    assert str(err.value).startswith(f"{path}{message}")


def test_check_json_data_leaves_other_faults_to_the_reader(tmp_path):
    """Faults that make pyarrow raise (not crash) are named by zebra.data's re-read, and NaN by
    zebra.data's look at the loaded floats, not here: the scan parses only lines that could be deep."""
    brackets = "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5)
    fine = [{"a": brackets}, {"a": [1.5, {"b": None}]}]
    path = put(tmp_path, "ok.jsonl", "".join(json.dumps(r) + "\n" for r in fine) + '{"a": 1, "a": 2}\n{"a" 1}\n{"a": NaN}')
    check_json_data(path)  # no error: brackets inside strings are not nesting


def test_check_json_data_spans_its_chunks(tmp_path, monkeypatch):
    import zebra.jsonio as jsonio

    monkeypatch.setattr(jsonio, "_CHUNK", 64)
    monkeypatch.setattr(jsonio, "_BLOCK", 16)
    rows = [json.dumps({"i": i, "t": "x" * (i % 50), "b": [[1]] * (i % 7)}) for i in range(200)]
    rows[150] = json.dumps({"i": 150, "t": "caf\u00e9"}, ensure_ascii=False)
    data = "\n".join(rows).encode().replace("é".encode(), b"\xe9")  # one latin-1 byte on line 151
    with pytest.raises(ReadError, match=r"chunks.jsonl:151: not UTF-8 text \(byte "):
        check_json_data(put(tmp_path, "chunks.jsonl", data))
    check_json_data(put(tmp_path, "chunks.jsonl", "\n".join(rows)))  # blocks of 16 bytes: many segments, no fault
    for bad in (0, 57, 199):  # the first line, one in the middle, the last without a final newline
        deep = rows.copy()
        deep[bad] = '{"i": ' + str(bad) + ', "v": ' + "[" * 200 + "]" * 200 + "}"
        with pytest.raises(ReadError, match=rf"chunks.jsonl:{bad + 1}: nested deeper"):
            check_json_data(put(tmp_path, "chunks.jsonl", "\n".join(deep)))


# ----------------------------------------------------------------------------- properties

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
records = st.lists(st.dictionaries(st.text(max_size=8), json_values, max_size=5), min_size=1, max_size=5)


def _no_surrogates(value) -> bool:
    return "\\ud" not in json.dumps(value).lower()


@FAST
@given(records, st.sampled_from(["jsonl", "json", "json-indented"]))
def test_any_records_json_dumps_writes_read_back_equal(tmp_path, rows, layout):
    """What json.dumps writes (no NaN/inf, no lone surrogates: those are refused) reads back equal,
    as JSON lines, a JSON list, or an indented JSON list."""
    rows = [r for r in rows if _no_surrogates(r)] or [{}]
    if layout == "jsonl":
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    else:
        text = json.dumps(rows, ensure_ascii=layout == "json", indent=2 if layout == "json-indented" else None)
    path = put(tmp_path, f"r.{layout}", text)
    assert read_json_records(path) == rows
    assert read_json(put(tmp_path, "doc.json", json.dumps(rows))) == rows
    check_json_data(path)


@FAST
@given(st.binary(max_size=200))
def test_any_bytes_give_records_or_one_read_error(tmp_path, data):
    path = put(tmp_path, "x.jsonl", data)
    for read in (read_json_records, read_json, first_json_record, check_json_data):
        try:
            read(path)
        except ReadError as err:
            assert "\n" not in str(err) and str(err).startswith(str(path))


@FAST
@given(st.lists(st.sampled_from(['{"a": ', "[", "]", "}", ", ", '"x"', '"[{"', "1", "\n", "NaN", '"\\ud800"', '"k": ']),
                max_size=60))
def test_json_like_text_gives_records_or_one_read_error(tmp_path, parts):
    """Fragments that make near-JSON (brackets inside strings, cut values, constants)."""
    path = put(tmp_path, "x.jsonl", "".join(parts))
    for read in (read_json_records, read_json, first_json_record, check_json_data):
        try:
            read(path)
        except ReadError as err:
            assert "\n" not in str(err) and str(err).startswith(str(path))


@FAST
@given(st.integers(min_value=1, max_value=3 * MAX_DEPTH), st.sampled_from(["[", '{"k": ']))
def test_depth_limit_is_exact(tmp_path, depth, opener):
    closer = "]" if opener == "[" else "}"
    inner = opener * (depth - 1) + "1" + closer * (depth - 1) if depth > 1 else "1"
    path = put(tmp_path, "d.jsonl", '{"a": ' + inner + "}\n")  # `depth` levels in all
    for read in (read_json_records, check_json_data):
        if depth <= MAX_DEPTH:
            read(path)
        else:
            with pytest.raises(ReadError, match="nested deeper than"):
                read(path)


def test_cost_benchmark_runs_on_the_sample():
    """benchmarks/json_check_cost.py, the README's measurement, on the shipped sample (one repeat)."""
    from benchmarks.json_check_cost import measure

    from zebra.data import SAMPLE

    out = measure(SAMPLE, 1)
    assert out["repeats"] == 1 and set(out["median_seconds"]) == {"scan", "cold_load", "check_numbers", "warm_load"}
    assert all(v > 0 for v in out["median_seconds"].values())
    seconds = out["median_seconds"]
    assert out["scan_over_cold_load"] == pytest.approx(seconds["scan"] / seconds["cold_load"], abs=0.01)


def test_a_list_on_one_line_names_the_item_as_well_as_the_line(tmp_path):
    """`[{...}, 5, {...}]`: every item is on line 1, so the line alone would not say which record."""
    one_line = tmp_path / "one.json"
    one_line.write_text('[{"a": 1}, {"a": 2}, 5, {"a": "\\ud800"}]')
    with pytest.raises(ReadError, match=r"one\.json:1: list item 3 expected to be a JSON object, got a number"):
        read_json_records(one_line)
    one_line.write_text('[{"a": 1}, {"a": "\\ud800"}]')
    with pytest.raises(ReadError, match=r"one\.json:1: list item 2: a holds a lone surrogate"):
        read_json_records(one_line)
    # one item per line: the line says it, and the message stays as short as before
    per_line = tmp_path / "lines.json"
    per_line.write_text('[\n{"a": 1},\n5\n]')
    with pytest.raises(ReadError, match=r"lines\.json:3: list item expected to be a JSON object"):
        read_json_records(per_line)
