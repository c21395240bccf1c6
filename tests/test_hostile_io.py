"""Hostile files for every input of every script (issue 19 §4, issue 21 §3): one line, never a traceback.

Each case writes one faulty file in place of a good one, runs the script that reads it as its own
process (tests/test_hostile.py's `run_cli`: a fork of this warm interpreter) and asserts what the
reader (zebra.jsonio) promises for that fault: a non-zero exit, exactly one `error:` line that names
the file and what is wrong with it (its line where it has one), no traceback and no output. Faults:
compressed or other binary bytes, bytes that are not UTF-8, an empty or truncated file, a record that
is not an object, a key twice, NaN, a lone surrogate, nesting 100,000 deep (pyarrow's JSON reader
segfaulted on it), and for CSV, YAML and Parquet inputs their counterparts. A UTF-8 byte-order mark
is accepted everywhere (`test_byte_order_mark_is_accepted`).

The fast suite runs each input with its likeliest faults (81 cases); `-m slow` runs every
input against every fault. make_ultrafeedback.py reads no file; train_sft.py, train_dpo.py,
select_potential.py and `evaluate.py --eval-dir` import torch first, so their cases are slow only.
"""

from __future__ import annotations

import gzip
import json
import shutil
import uuid
from pathlib import Path

import pytest
from test_hostile import ROOT, SAMPLE_ROWS, assert_refused, run_cli
from tiny import preference_record

POOL = ROOT / "data" / "alpaca_eval"
_ALL_POOL = [json.loads(line) for line in (POOL / "model_outputs.jsonl").read_text(encoding="utf-8").splitlines()]
POOL_ROWS = [r for r in _ALL_POOL if r["instruction"] in {_ALL_POOL[0]["instruction"], _ALL_POOL[1]["instruction"]}]  # 2 prompts x 12
ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
DEEP = b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


@pytest.fixture(scope="module", autouse=True)
def warm_imports():
    """What the scripts import, imported once here: each forked case then costs a fraction of a second."""
    import datasets  # noqa: F401
    import yaml  # noqa: F401

    import zebra.analysis  # noqa: F401
    import zebra.lmeval  # noqa: F401
    import zebra.pipeline  # noqa: F401
    import zebra.stats  # noqa: F401


# ----------------------------------------------------------------------------- faults


def _lines(rows) -> list[bytes]:
    return [json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in rows]


def _into_second(lines: list[bytes], insert: bytes) -> list[bytes]:
    """`insert` as the first member of the second record."""
    return [lines[0], b"{" + insert + b", " + lines[1][1:], *lines[2:]]


def jsonl_fault(kind: str, lines: list[bytes]) -> tuple[bytes, str]:
    """(bytes of a JSON-lines file with `kind`, what its one error line must say)."""
    body = b"".join(lines)
    if kind == "gzip":
        return gzip.compress(body), ": gzip-compressed: decompress it first"
    if kind == "not-utf8":
        return b"".join(_into_second(lines, b'"zebra": "caf\xe9"')), ":2: not UTF-8 text (byte "
    if kind == "truncated":
        return body[: len(body) - len(lines[-1]) // 2], f":{len(lines)}: the line ends inside a JSON value"
    if kind == "not-object":
        return b"".join([lines[0], b"5\n", *lines[1:]]), ":2: expected a JSON object, got a number (5)"
    if kind == "duplicate-key":
        return b"".join(_into_second(lines, b'"zebra": 1, "zebra": 2')), ":2: the key 'zebra' appears twice in one object"
    if kind == "nan":
        return b"".join(_into_second(lines, b'"zebra": NaN')), ":2: NaN is not JSON"
    if kind == "surrogate":
        return b"".join(_into_second(lines, b'"zebra": "\\ud800"')), ":2: zebra holds a lone surrogate (\\ud800)"
    if kind == "deep":
        return body + DEEP + b"\n", f":{len(lines) + 1}: nested deeper than 100 levels"
    if kind == "empty":
        return b"", ": empty file (0 bytes)"
    raise ValueError(kind)


def list_fault(kind: str, rows) -> tuple[bytes, str]:
    """The same faults in a JSON list, one record per line after the `[` line."""
    lines = [json.dumps(r, ensure_ascii=False).encode() for r in rows]
    text = lambda items: b"[\n" + b",\n".join(items) + b"\n]\n"  # noqa: E731
    if kind == "not-object":
        return text([lines[0], b"5", *lines[1:]]), ":3: list item expected to be a JSON object, got a number (5)"
    if kind in ("gzip", "empty"):
        return jsonl_fault(kind, [t + b"\n" for t in lines])
    if kind == "truncated":
        whole = text(lines)
        return whole[: len(whole) - 3 - len(lines[-1]) // 2], f":{len(lines) + 1}: the file ends inside a JSON value"
    if kind == "deep":
        return text([*lines, DEEP]), f":{len(lines) + 2}: nested deeper than 100 levels"
    faulty = [line.rstrip(b"\n") for line in jsonl_fault(kind, [t + b"\n" for t in lines])[0].splitlines(True)]
    return text(faulty), jsonl_fault(kind, [t + b"\n" for t in lines])[1].replace(":2:", ":3:")


def document_fault(kind: str, doc: dict) -> tuple[bytes, str]:
    """A JSON document (summary, lm-eval results, pool.json) with `kind`; its first member is on line 2."""
    text = json.dumps(doc, indent=1).encode()
    first = b"{\n"
    rest = text[len(first):]
    if kind == "gzip":
        return gzip.compress(text), ": gzip-compressed: decompress it first"
    if kind == "not-utf8":
        return first + b' "zebra": "caf\xe9",\n' + rest, ":2: not UTF-8 text (byte "
    if kind == "truncated":
        cut = text[: len(text) // 2]
        line = cut.count(b"\n") + 1
        return cut, f":{line}: the file ends inside a JSON value"
    if kind == "duplicate-key":
        return first + b' "zebra": 1,\n "zebra": 2,\n' + rest, ":3: the key 'zebra' appears twice in one object"
    if kind == "nan":
        return first + b' "zebra": NaN,\n' + rest, ":2: NaN is not JSON"
    if kind == "deep":
        return first + b' "zebra":\n' + DEEP + b",\n" + rest, ":3: nested deeper than 100 levels"
    if kind == "empty":
        return b"", ": empty file (0 bytes)"
    raise ValueError(kind)


def csv_fault(kind: str, text: str) -> tuple[bytes, str]:
    if kind == "gzip":
        return gzip.compress(text.encode()), ": gzip-compressed: decompress it first"
    if kind == "not-utf8":
        lines = text.splitlines(True)
        return "".join([lines[0], lines[1].replace(",", "é,", 1), *lines[2:]]).encode("latin-1"), ":2: not UTF-8 text (byte "
    if kind == "empty":
        return b"", ": empty file (0 bytes)"
    raise ValueError(kind)


def yaml_fault(kind: str, text: str) -> tuple[bytes, str]:
    added = text.count("\n") + 1  # the line a fault appended at the end is on
    if kind == "not-utf8":
        return ("# café\n" + text).encode("latin-1"), ":1: not UTF-8 text (byte "
    if kind == "python-tag":
        return (text + "extra: !!python/object/apply:os.system ['true']\n").encode(), \
            f":{added}: the YAML tag !!python/object/apply:os.system is not allowed"
    if kind == "duplicate-key":
        return (text + "script: train_sft.py\n").encode(), f":{added}: the key 'script' appears twice in one mapping"
    if kind == "empty":
        return b"", ": empty file (0 bytes)"
    raise ValueError(kind)


def parquet_fault(kind: str, good: bytes) -> tuple[bytes, str]:
    if kind == "empty":
        return b"", ": empty file (0 bytes)"
    if kind == "truncated":
        return good[: len(good) // 2], ": truncated Parquet file (no PAR1 footer at its end)"
    if kind == "text":
        return b"model,response\na,b\n", ": not a Parquet file (no PAR1 magic bytes at its start)"
    if kind == "gzip":
        return gzip.compress(good), ": not a Parquet file (gzip-compressed: decompress it first"
    raise ValueError(kind)


JSONL_FAULTS = ["gzip", "not-utf8", "truncated", "not-object", "duplicate-key", "nan", "surrogate", "deep", "empty"]
DOC_FAULTS = ["gzip", "not-utf8", "truncated", "duplicate-key", "nan", "deep", "empty"]
CSV_FAULTS = ["gzip", "not-utf8", "empty"]
YAML_FAULTS = ["not-utf8", "python-tag", "duplicate-key", "empty"]
PARQUET_FAULTS = ["empty", "truncated", "text", "gzip"]


# ----------------------------------------------------------------------------- inputs


def _records():
    return [preference_record(i) for i in range(6)]


def _summary():
    return {"run": {"model": "m", "method": "dpo", "strategy": "sup"},
            "results": {"arc_easy": {"n": 3, "accuracy": 0.5, "metric": "accuracy"}}, "finished": True}


def _eval_run(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "arc_easy.jsonl").write_text("".join(json.dumps({"id": str(i), "score": i % 2}) + "\n" for i in range(4)))
    (folder / "summary.json").write_text(json.dumps(_summary()))
    return folder


def _parquet_bytes(rows, tmp: Path) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp / "_good.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    data = path.read_bytes()
    path.unlink()
    return data


def _judgments():
    return [{"instruction": r["instruction"], "generator_1": "ref", "generator_2": r["generator"], "preference": 2}
            for r in POOL_ROWS]


BENCH_CSV = (ROOT / "model_aware" / "benchmark.csv").read_text(encoding="utf-8")
NAMES_CSV = (POOL / "model_names.csv").read_text(encoding="utf-8")
RECIPE = (ROOT / "recipes" / "qwen2.5-3b" / "dpo-sup.yaml").read_text(encoding="utf-8")
LM_EVAL = next((ROOT / "data" / "lm_eval_results" / "lmeval_v0.3").rglob("*.json"))


# name -> (file format, faults, how to make the faulty input: (tmp, faulty bytes) -> (path of the faulty file,
#          script, argv)); the good file's content comes from `good`
def _inputs() -> dict:
    uf, pool, records = SAMPLE_ROWS[:12], POOL_ROWS, _records()

    def put(tmp: Path, name: str, data: bytes) -> Path:
        path = tmp / "in" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def out(tmp):
        return ["--output", str(tmp / "out" / "o.json")]

    def binarize(script, name, extra=()):
        return lambda tmp, data: (p := put(tmp, name, data), script, ["--data", str(p), *extra, *out(tmp)])

    def pool_with(flag, name, script):
        def make(tmp, data):
            p = put(tmp, name, data)
            src = put(tmp, "pool.jsonl", b"".join(_lines(pool)))
            return p, script, ["--data", str(src), flag, str(p), *out(tmp)]
        return make

    def manifest(tmp, data):
        folder = tmp / "in" / "pool"
        folder.mkdir(parents=True)
        (folder / "model_outputs.jsonl").write_bytes(b"".join(_lines(pool)))
        (folder / "pool.json").write_bytes(data)
        return folder / "pool.json", "binarize_score.py", ["--data", str(folder), *out(tmp)]

    def table(tmp, data):
        p = put(tmp, "table.csv", data)
        return p, "binarize_score.py", ["--data", str(put(tmp, "pool.jsonl", b"".join(_lines(pool)))),
                                        "--behaviour-table", str(p), *out(tmp)]

    def trainer(script):
        def make(tmp, data):
            p = put(tmp, "records.json", data)
            model = tmp / "model"
            model.mkdir()
            (model / "config.json").write_text("{}")
            return p, script, ["--data", str(p), "--model", str(model), "--output-dir", str(tmp / "out" / "run")]
        return make

    def compare(tmp, data):
        a, b = _eval_run(tmp / "in" / "a"), _eval_run(tmp / "in" / "b")
        (b / "arc_easy.jsonl").write_bytes(data)
        return b / "arc_easy.jsonl", "evaluate.py", ["compare", str(a), str(b), "--permutations", "10",
                                                     "--json", str(tmp / "out" / "c.json")]

    def table_summaries(tmp, data):
        _eval_run(tmp / "in" / "evals" / "a")
        bad = _eval_run(tmp / "in" / "evals" / "b") / "summary.json"
        bad.write_bytes(data)
        return bad, "evaluate.py", ["table", str(tmp / "in" / "evals"), "--permutations", "10", "--output-dir", str(tmp / "out")]

    def ifeval(tmp, data):
        p = put(tmp, "responses.jsonl", data)
        return p, "evaluate.py", ["ifeval-responses", str(p)]

    def analyze(tmp, data):
        folder = tmp / "in" / "binarized"
        folder.mkdir(parents=True)
        (folder / "sup.json").write_bytes(data)
        return folder / "sup.json", "analyze.py", ["kinship", "--binarized", str(folder), "--output-dir", str(tmp / "out")]

    def lm_eval(tmp, data):
        p = put(tmp, "results.json", data)
        return p, "build_table.py", ["--lm-eval", str(p), "--output", str(tmp / "out" / "t.csv")]

    def evaluate_summary(tmp, data):
        p = put(tmp, "run/summary.json", data)
        return p, "build_table.py", ["--evaluate", str(p), "--output", str(tmp / "out" / "t.csv")]

    def build_names(tmp, data):
        p = put(tmp, "names.csv", data)
        return p, "build_table.py", ["--lm-eval", str(LM_EVAL), "--model-names", str(p), "--output", str(tmp / "out" / "t.csv")]

    def study_table(tmp, data):
        p = put(tmp, "table.csv", data)
        return p, "build_table.py", ["study", "--table", str(p), "--output-dir", str(tmp / "out" / "study")]

    def recipe(script, extra):
        def make(tmp, data):
            p = put(tmp, "m/dpo-sup.yaml", data)
            return p, script, ["--recipes", str(p), "--dry-run", *extra]
        return make

    def data_dir(tmp, data):
        folder = tmp / "in" / "eval"
        folder.mkdir(parents=True)
        (folder / "arc_easy.jsonl").write_bytes(data)
        model = tmp / "model"
        model.mkdir()
        (model / "config.json").write_text("{}")
        return folder / "arc_easy.jsonl", "evaluate.py", ["--model", str(model), "--eval-dir", str(folder),
                                                          "--benchmarks", "arc_easy", "--output-dir", str(tmp / "out")]

    def run_json(tmp, data):
        folder = tmp / "in" / "eval"
        folder.mkdir(parents=True)
        shutil.copy(ROOT / "tests" / "data" / "eval" / "arc_easy.jsonl", folder / "arc_easy.jsonl")
        model = tmp / "model"
        model.mkdir()
        (model / "config.json").write_text("{}")
        (model / "run.json").write_bytes(data)
        return model / "run.json", "evaluate.py", ["--model", str(model), "--eval-dir", str(folder),
                                                   "--benchmarks", "arc_easy", "--output-dir", str(tmp / "out")]

    arc = [json.loads(line) for line in (ROOT / "tests" / "data" / "eval" / "arc_easy.jsonl").read_text().splitlines()]
    responses = [{"prompt": f"p{i}", "response": f"r{i}"} for i in range(4)]
    return {
        # name: (kind, good content, faults in the fast suite, make)
        "uf-jsonl": ("jsonl", uf, JSONL_FAULTS, binarize("binarize_score.py", "uf.jsonl")),
        "uf-jsonl-format-uf": ("jsonl", uf, ["deep", "nan", "gzip"], binarize("binarize_score.py", "uf.jsonl", ["--format", "ultrafeedback"])),
        "uf-json-list": ("list", uf, ["not-object", "duplicate-key", "nan", "deep"], binarize("binarize_similarity.py", "uf.json")),
        "uf-parquet": ("parquet", uf, PARQUET_FAULTS, binarize("binarize_combined.py", "uf.parquet")),
        "uf-parquet-format-uf": ("parquet", uf, ["truncated"], binarize("binarize_combined.py", "uf.parquet", ["--format", "ultrafeedback"])),
        "uf-arrow": ("arrow", uf, ["empty", "text"], binarize("binarize_score.py", "uf.arrow")),
        "pool-jsonl": ("jsonl", pool, JSONL_FAULTS, binarize("binarize_combined.py", "pool.jsonl")),
        "pool-json-list": ("list", pool, ["truncated", "surrogate"], binarize("binarize_score.py", "pool.json")),
        "pool-csv": ("csv", pool, CSV_FAULTS, binarize("binarize_score.py", "pool.csv")),
        "pool-parquet": ("parquet", pool, ["truncated", "text"], binarize("binarize_score.py", "pool.parquet")),
        "pool-manifest": ("document", {"responses": "model_outputs.jsonl"}, DOC_FAULTS, manifest),
        "judgments": ("jsonl", _judgments(), ["not-utf8", "duplicate-key", "nan", "deep"], pool_with("--judgments", "j.jsonl", "binarize_baseline.py")),
        "model-names": ("csv", NAMES_CSV, CSV_FAULTS, pool_with("--model-names", "names.csv", "binarize_score.py")),
        "benchmark-table": ("csv", BENCH_CSV, CSV_FAULTS, table),
        "compare-scores": ("jsonl", [{"id": str(i), "score": i % 2} for i in range(4)], ["not-utf8", "nan", "truncated"], compare),
        "table-summary": ("document", _summary(), ["not-utf8", "duplicate-key", "deep"], table_summaries),
        "ifeval-responses": ("jsonl", responses, ["gzip", "not-object", "surrogate"], ifeval),
        "analyze-binarized": ("list", records, ["truncated", "nan", "not-object"], analyze),
        "lm-eval-results": ("document", json.loads(LM_EVAL.read_text()), ["not-utf8", "nan", "deep"], lm_eval),
        "evaluate-summary": ("document", _summary(), ["gzip", "truncated"], evaluate_summary),
        "build-names": ("csv", "pool_name,behaviour_table_name\nLlama-2-7b-chat-hf,llama-2-7b-chat\n", ["not-utf8"], build_names),
        "study-table": ("csv", BENCH_CSV, ["not-utf8"], study_table),
        "grid-recipe": ("yaml", RECIPE, YAML_FAULTS, recipe("train_grid.py", [])),
        "reproduce-recipe": ("yaml", RECIPE, ["python-tag", "not-utf8"], recipe("reproduce.py", ["--data", "x/y"])),
        # torch or trl first: slow only
        "train-dpo-records": ("list", records, [], trainer("train_dpo.py")),
        "train-sft-records": ("jsonl", records, [], trainer("train_sft.py")),
        "potential-records": ("jsonl", records, [], lambda tmp, data: (
            p := put(tmp, "records.jsonl", data), "select_potential.py",
            ["--data", str(p), "--model", "none", "--output", str(tmp / "out" / "p.json")])),
        "eval-data-dir": ("jsonl", arc, [], data_dir),
        "eval-run-json": ("document", {"base_model": "m", "method": "dpo", "strategy": "sup"}, [], run_json),
    }


INPUTS = _inputs()
ALL_FAULTS = {"jsonl": JSONL_FAULTS, "list": JSONL_FAULTS, "document": DOC_FAULTS, "csv": CSV_FAULTS,
              "yaml": YAML_FAULTS, "parquet": PARQUET_FAULTS, "arrow": ["empty", "text", "gzip"]}


def _bad_bytes(kind: str, good, fault: str, tmp: Path) -> tuple[bytes, str]:
    if kind == "jsonl":
        return jsonl_fault(fault, _lines(good))
    if kind == "list":
        return list_fault(fault, good)
    if kind == "document":
        return document_fault(fault, good)
    if kind == "yaml":
        return yaml_fault(fault, good)
    if kind == "csv":
        text = good if isinstance(good, str) else _csv(good)
        return csv_fault(fault, text)
    if kind == "parquet":
        return parquet_fault(fault, _parquet_bytes(good, tmp))
    if kind == "arrow":
        return {"empty": (b"", ": empty file (0 bytes)"),
                "text": (b"model,response\n", ": not an Arrow file (no Arrow magic bytes at its start)"),
                "gzip": (gzip.compress(b"ARROW1"), ": not an Arrow file (gzip-compressed")}[fault]
    raise ValueError(kind)


def _csv(rows) -> str:
    import pandas as pd

    return pd.DataFrame(rows).to_csv(index=False)


CASES = [(name, fault) for name, (kind, _, fast, _) in INPUTS.items() for fault in ALL_FAULTS[kind]]
FAST_CASES = {(name, fault) for name, (_, _, fast, _) in INPUTS.items() for fault in fast}


def _params():
    for name, fault in CASES:
        marks = () if (name, fault) in FAST_CASES else (pytest.mark.slow,)
        yield pytest.param(name, fault, id=f"{name}-{fault}", marks=marks)


@pytest.mark.parametrize("name, fault", list(_params()))
def test_a_faulty_file_is_one_line_naming_it(tmp_path, name, fault):
    kind, good, _, make = INPUTS[name]
    data, expected = _bad_bytes(kind, good, fault, tmp_path)
    bad, script, argv = make(tmp_path, data)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    code, out, err = run_cli(script, *argv, env=ENV)
    line = assert_refused(code, err)
    assert line.startswith("error: ") and f"{bad}{expected}" in line, (line, f"{bad}{expected}")
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before, "a file was written or changed"


BOM_CASES = ["uf-jsonl", "pool-jsonl", "pool-csv", "pool-manifest", "model-names", "benchmark-table", "judgments"]


@pytest.mark.parametrize("name", BOM_CASES)
def test_byte_order_mark_is_accepted(tmp_path, name):
    """A UTF-8 BOM (what Windows editors write) reads as the file without it: same exit, same pairs."""
    kind, good, _, make = INPUTS[name]
    plain = {"jsonl": lambda g: b"".join(_lines(g)), "csv": lambda g: (g if isinstance(g, str) else _csv(g)).encode(),
             "document": lambda g: json.dumps(g).encode()}[kind](good)
    results = []
    for variant, data in (("plain", plain), ("bom", b"\xef\xbb\xbf" + plain)):
        case = tmp_path / variant
        case.mkdir()
        _, script, argv = make(case, data)
        code, out, err = run_cli(script, *argv, env=ENV)
        assert code == 0, err
        results.append((case / "out" / "o.json").read_text(encoding="utf-8"))
    assert results[0] == results[1] and results[0].startswith("[")


def test_the_first_load_scan_runs_once_per_content_and_only_after_a_clean_load(tmp_path, monkeypatch):
    """zebra.data scans a JSON file on the first load of its bytes only (datasets serves later loads
    from its content-keyed cache): a refused file is refused every time, a clean one scanned once."""
    import zebra.data as data
    from zebra.errors import ZebraError

    calls = []
    scan = data.check_json_data
    monkeypatch.setattr(data, "check_json_data", lambda path: (calls.append(Path(path).name), scan(path))[1])
    lines = _lines(SAMPLE_ROWS[:6])  # load_ultrafeedback reads UltraFeedback rows only
    nan = tmp_path / "nan.jsonl"
    nan.write_bytes(b"".join(_into_second(lines, b'"zebra": NaN')))
    for _ in range(2):
        with pytest.raises(ZebraError, match=rf"{nan}:2: NaN is not JSON"):
            data.load_ultrafeedback(nan)
    good = tmp_path / "good.jsonl"
    # bytes no earlier run loaded: the datasets cache is shared, by content
    good.write_bytes(b"".join(_into_second(lines, b'"zebra": "%s"' % uuid.uuid4().hex.encode())))
    assert len(data.load_ultrafeedback(good)) == len(data.load_ultrafeedback(good)) == 6
    assert calls == ["nan.jsonl", "nan.jsonl", "good.jsonl"]


def test_nan_in_a_mixed_type_file_is_refused(tmp_path):
    """The shipped sample's fields disagree in type from row to row, so `datasets` re-encodes them
    through ujson, which writes NaN as null: the run wrote its pairs with exit 0. The text is
    searched for NaN/Infinity in that case."""
    lines = (ROOT / "data" / "ultrafeedback_sample.jsonl").read_bytes().splitlines(True)
    lines[5] = lines[5].replace(b'"overall_score": ', b'"overall_score": NaN, "zebra": ', 1)
    data = tmp_path / "in" / "sample.jsonl"
    data.parent.mkdir()
    data.write_bytes(b"".join(lines))
    for fmt in ("auto", "ultrafeedback"):
        code, _, err = run_cli("binarize_score.py", "--data", str(data), "--format", fmt,
                               "--output", str(tmp_path / "out" / "o.json"), env=ENV)
        assert assert_refused(code, err) == f"error: {data}:6: NaN is not JSON; write null or a number"
        assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
