"""Issue 23 §2: the analyses that read binarize outputs (frequency, kinship, TF–IDF, agreement)
hold a batch of records' texts at a time, not five whole outputs; what they keep per pair is a
few numbers. Bounded memory is tested as a cap on the records (texts) held at once, and the
numbers as equal to the whole-file computation, never as timings."""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from zebra import analysis as A
from zebra.data import prompt_id

ROOT = Path(__file__).resolve().parent.parent
WORDS = "apple river stone cloud ember frost maple harbor violet copper lantern meadow".split()


def _msg(prompt, text):
    return [{"content": prompt, "role": "user"}, {"content": text, "role": "assistant"}]


def _records(n, seed=0, models=("gpt-4", "bard", "starchat", "alpaca-7b")):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        c, r = rng.choice(models, 2, replace=False)
        text = lambda: " ".join(rng.choice(WORDS, int(rng.integers(0, 9))))  # noqa: E731 (0 words: an empty text)
        out.append({"prompt": f"prompt {i}", "prompt_id": prompt_id(f"prompt {i}"), "most_similar_pair": [str(c), str(r)],
                    "chosen": _msg(f"prompt {i}", text()), "rejected": _msg(f"prompt {i}", text()),
                    "kinship_rank": None if i % 5 == 0 else int(rng.integers(1, 4))})
    return out


def _write(path: Path, records):
    if path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(records), path)
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    else:
        path.write_text(json.dumps(records), encoding="utf-8")
    return path


@pytest.fixture
def held(monkeypatch):
    """The sizes of the record lists that reach pairs_frame: every text a reader holds passes there."""
    sizes = []
    real = A.pairs_frame

    def spy(records, *args, **kwargs):
        sizes.append(len(records))
        return real(records, *args, **kwargs)

    monkeypatch.setattr(A, "pairs_frame", spy)
    return sizes


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".parquet"])
def test_load_pairs_holds_a_batch_and_keeps_numbers_not_texts(tmp_path, held, suffix):
    records = _records(11)
    path = _write(tmp_path / f"sim{suffix}", records)
    got = A.load_pairs(path, batch_size=3)
    assert held and max(held) <= 3 and sum(held) == 11
    assert list(got.columns) == A.PAIR_NUMBERS  # no prompt, no chosen_text / rejected_text
    full = A.pair_numbers(A.pairs_frame(records, str(path)))
    pd.testing.assert_frame_equal(got, full)
    assert got["chosen_chars"].tolist() == [len(r["chosen"][-1]["content"]) for r in records]
    assert got["kinship_rank"].isna().sum() == 3


def test_load_pairs_names_a_bad_record_by_its_place_in_the_file(tmp_path):
    records = _records(8)
    records[6]["kinship_rank"] = "abc"
    path = _write(tmp_path / "sup.json", records)
    with pytest.raises(A.AnalysisError, match=r"sup.json: record 6: 'kinship_rank' must be a whole number"):
        A.load_pairs(path, batch_size=4)  # the second batch's third record
    assert A.load_pairs(_write(tmp_path / "empty.json", []), batch_size=4).empty


def test_tfidf_from_files_in_batches_equals_one_fit_in_memory(tmp_path, held):
    most, least = _records(13, seed=1), _records(13, seed=2)
    for r in least[:4]:
        r["prompt"] = r["prompt_id"] = "moved " + r["prompt"]  # prompts only one file covers
    m, lst = _write(tmp_path / "sim.json", most), _write(tmp_path / "sim_least.jsonl", least)
    got, got_per = A.tfidf_check_files(m, lst, n_boot=100, seed=0, batch_size=2)
    assert held and max(held) <= 2
    want, want_per = A.tfidf_check(A.pairs_frame(most), A.pairs_frame(least), n_boot=100, seed=0)
    assert got == want  # the same vocabulary and IDF: equal, not close
    pd.testing.assert_frame_equal(got_per.reset_index(drop=True), want_per.reset_index(drop=True))
    assert got["paired_gap"]["n"] == 9


def test_tfidf_fit_in_batches_is_scikit_learns_fit():
    from sklearn.feature_extraction.text import TfidfVectorizer

    corpus = ["The cat sat on the mat.", "", "A dog; a CAT!", "mat mat mat", "x y z", "Über naïve café 42"]
    vocab, idf = A.tfidf_fit([corpus[:2], corpus[2:5], corpus[5:]])
    ref = TfidfVectorizer().fit(corpus)
    assert vocab == ref.vocabulary_ and np.array_equal(idf, ref.idf_)
    a, b = corpus[:3], corpus[3:]
    direct = np.asarray(ref.transform(a).multiply(ref.transform(b)).sum(axis=1)).ravel()
    assert np.array_equal(A.tfidf_pair_cosine(a, b, corpus), direct)
    assert A.tfidf_pair_cosine(["", " "], ["", "!"]).tolist() == [0.0, 0.0]  # no word at all: cosine 0


def test_resample_groups_draws_a_bounded_matrix_and_the_same_one_for_small_inputs():
    shapes = [idx.shape for idx in A.resample_groups(1_000_000, 50, seed=0)]
    assert sum(s[0] for s in shapes) == 50 and max(r * c for r, c in shapes) <= A.RESAMPLE_CELLS
    rng = np.random.default_rng(7)  # 403 prompts: 200 resamples a chunk, the draws as before
    for idx in A.resample_groups(403, 500, seed=7):
        assert np.array_equal(idx, rng.integers(0, 403, (min(200, idx.shape[0]), 403)))
    # 30,000 prompts: smaller chunks, and still the indices of one 200-row draw
    chunks = list(A.resample_groups(30_000, 200, seed=1))
    assert len(chunks) > 1
    assert np.array_equal(np.concatenate(chunks), np.random.default_rng(1).integers(0, 30_000, (200, 30_000)))


def test_random_floor_pairs_carry_lengths_not_texts(tmp_path):
    import datasets

    from zebra.agreement import random_pairs
    from zebra.behaviour import read_benchmark

    table = read_benchmark(ROOT / "model_aware" / "benchmark.csv")
    models = ["gpt-4", "gpt-3.5-turbo", "llama-2-13b-chat", "alpaca-7b"]
    rows = [{"instruction": f"p{i}", "completions": [{"model": m, "response": f"{m} " + "w " * (i + k), "overall_score": 1.0}
                                                      for k, m in enumerate(models)]} for i in range(9)]
    pairs = random_pairs(datasets.Dataset.from_list(rows), table, 42,
                         count_tokens=lambda texts: np.array([len(t.split()) for t in texts]))
    assert not any(c.endswith("_text") or c == "prompt" for c in pairs.columns)
    text = {(r["instruction"], c["model"]): c["response"] for r in rows for c in r["completions"]}
    ids = {prompt_id(r["instruction"]): r["instruction"] for r in rows}
    for p in pairs.itertuples():
        chosen = text[(ids[p.prompt_id], p.chosen_model)]
        assert p.chosen_chars == len(chosen) and p.chosen_tokens == len(chosen.split())


def test_the_token_counter_remembers_digests_not_texts():
    from zebra.agreement import smollm2_token_counter

    _, count = smollm2_token_counter()
    long = "a long response " * 200
    assert count([long, "hi", long]).tolist()[0] == count([long])[0]
    (cache,) = [c.cell_contents for c in count.__closure__ if isinstance(c.cell_contents, dict)]
    assert cache and all(isinstance(k, bytes) and len(k) == 16 for k in cache)


def test_analyze_reads_outputs_a_batch_at_a_time_with_the_same_numbers(tmp_path, monkeypatch, held):
    folder = tmp_path / "bin"
    folder.mkdir()
    for stem, seed in (("sup", 3), ("sim", 4), ("sim_least", 5)):
        _write(folder / f"{stem}.json", _records(9, seed))
    monkeypatch.syspath_prepend(str(ROOT))
    import analyze

    outs = {}
    for size in ("2", "4096"):
        outs[size] = tmp_path / f"out{size}"
        monkeypatch.setattr(sys, "argv", ["analyze.py", "frequency", "kinship", "tfidf", "--binarized", str(folder),
                                          "--batch-size", size, "--n-boot", "50", "--output-dir", str(outs[size])])
        analyze.main()
        if size == "2":
            assert max(held) <= 2
    for name in ("fig8_frequency.csv", "kinship_rank.csv", "kinship_rank.json", "tfidf.json", "tfidf_pairs.csv"):
        assert (outs["2"] / name).read_bytes() == (outs["4096"] / name).read_bytes(), name
    with pytest.raises(SystemExit, match="--batch-size"):
        monkeypatch.setattr(sys, "argv", ["analyze.py", "frequency", "--binarized", str(folder), "--batch-size", "0",
                                          "--output-dir", str(tmp_path / "o")])
        analyze.main()


# ----------------------------------------------------------------------------- select_potential.py


def _scored_records(n):
    rng = np.random.default_rng(9)
    return [{"prompt": f"Question {i}: name a colour.", "prompt_id": prompt_id(f"q{i}"),
             "chosen": _msg(f"Question {i}: name a colour.", " ".join(rng.choice(WORDS, 3 + i % 4))),
             "rejected": _msg(f"Question {i}: name a colour.", " ".join(rng.choice(WORDS, 2 + i % 3))),
             "most_similar_pair": ["gpt-4", "bard"], "mb_sup_chosen": 0.5 + 0.04 * i, "mb_sup_rejected": 0.3,
             "extra": i if i % 2 else float(i)} for i in range(n)]


def _select(folder, data, out, chunk, **over):
    import argparse

    import select_potential

    args = argparse.Namespace(data=str(data), model=str(folder), gguf_file=None, chat_template=None, output=str(out),
                              keep=0.5, lam=1.0, explicit="auto", batch_size=4, max_length=256, device="cpu",
                              dtype="float32", limit=None, chunk=chunk)
    for k, v in over.items():
        setattr(args, k, v)
    return select_potential.run(args)


def test_select_potential_scores_a_chunk_at_a_time_and_keeps_the_same_pairs(tmp_path, monkeypatch):
    from tests.tiny import make_tiny_model_dir
    from zebra import potential
    from zebra.records import read_records

    monkeypatch.syspath_prepend(str(ROOT))
    folder = make_tiny_model_dir(tmp_path / "tiny")
    data = _write(tmp_path / "sup.json", _scored_records(10))
    sizes = []
    real = potential.implicit_margins

    def spy(model, tokenizer, records, *args, **kwargs):
        records = list(records)
        sizes.append(len(records))
        return real(model, tokenizer, records, *args, **kwargs)

    monkeypatch.setattr(potential, "implicit_margins", spy)
    small = _select(folder, data, tmp_path / "small.parquet", chunk=3)
    assert sizes == [3, 3, 3, 1]
    whole = _select(folder, data, tmp_path / "whole.parquet", chunk=4096)
    assert small["counts"] == whole["counts"] and small["counts"]["read"] == 10 and small["counts"]["kept"] == 5
    a, b = read_records(tmp_path / "small.parquet"), read_records(tmp_path / "whole.parquet")
    assert [r["prompt_id"] for r in a] == [r["prompt_id"] for r in b]  # the same pairs, in input order
    for x, y in zip(a, b):  # another batching moves a log-prob by ~1e-6 at most
        assert x["alignment_potential"] == pytest.approx(y["alignment_potential"], abs=1e-4)
        assert x["extra"] == y["extra"] and isinstance(x["extra"], float)  # int and float batches: one float column
    limited = _select(folder, data, tmp_path / "limited.json", chunk=3, limit=4)
    assert limited["counts"]["read"] == 4 and sizes[-1] == 1  # 3 + 1


def test_select_potential_names_a_bad_record_by_its_place_in_the_file(tmp_path, monkeypatch):
    from zebra.errors import ZebraError

    monkeypatch.syspath_prepend(str(ROOT))
    records = _scored_records(8)
    records[6]["chosen"] = 5
    data = _write(tmp_path / "sup.json", records)
    with pytest.raises(ZebraError, match=r"sup.json: record 7: 'chosen' must be"):
        _select(tmp_path / "no-model", data, tmp_path / "o.json", chunk=3)  # refused before any model loads
    mixed = _scored_records(8)
    mixed[5]["extra"] = "text"
    with pytest.raises(ZebraError, match="field 'extra' holds values of several types"):
        _select(tmp_path / "no-model", _write(tmp_path / "mixed.json", mixed), tmp_path / "o.parquet", chunk=3)


# ----------------------------------------------------------------------------- one line at a time


LAYOUTS = {
    "writer.json": "[\n" + ",\n".join(json.dumps(r) for r in ({"a": 1}, {"b": "x\u2028y"}, {"c": [1, 2]})) + "\n]\n",
    "lines.jsonl": "".join(json.dumps(r) + "\n" for r in ({"a": 1}, {"b": 2})) + "\n",
    "bom.jsonl": "\ufeff" + json.dumps({"a": 1}) + "\r\n" + json.dumps({"b": 2}) + "\r\n",
    "one_line.json": json.dumps([{"a": 1}, {"b": 2}]),
    "pretty.json": json.dumps([{"a": 1}, {"b": 2}], indent=2),
    "empty.json": "[\n]\n",
    "trailing_comma.json": '[\n{"a": 1},\n{"b": 2},\n]\n',
    "bad_item.json": '[\n{"a": 1},\n{"b": NaN},\n{"c": 3}\n]\n',
    "duplicate_key.jsonl": '{"a": 1}\n{"a": 1, "a": 2}\n',
    "not_object.jsonl": '{"a": 1}\n[1, 2]\n',
    "truncated.json": '[\n{"a": 1},\n{"b": 2}',
    "no_comma.json": '[\n{"a": 1}\n{"b": 2}\n]\n',
    "blank.jsonl": "\n\n",
}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_stream_json_records_gives_the_whole_file_readers_records_and_messages(tmp_path, name):
    from zebra.jsonio import ReadError, iter_json_records, stream_json_records

    path = tmp_path / name
    path.write_text(LAYOUTS[name], encoding="utf-8")

    def read(reader):
        got = []
        try:
            for item in reader(path, allow_empty=True):
                got.append(item)
        except ReadError as err:
            return got, str(err)
        return got, None

    assert read(stream_json_records) == read(iter_json_records)


def test_stream_json_records_parses_a_line_at_a_time(tmp_path, monkeypatch):
    from zebra import jsonio
    from zebra.records import RecordWriter, iter_records

    path = tmp_path / "sup.json"
    records = _records(40)
    with RecordWriter(path) as writer:
        writer.write(records[:25])
        writer.write(records[25:])
    parsed = []
    real = jsonio._parse
    monkeypatch.setattr(jsonio, "_parse", lambda text, *a, **k: (parsed.append(len(text)), real(text, *a, **k))[1])
    batches = list(iter_records(path, batch_size=16))
    assert [len(b) for b in batches] == [16, 16, 8] and len(parsed) == 40
    assert max(parsed) < path.stat().st_size / 10  # one record's line, never the file's text
    assert [r["prompt_id"] for b in batches for r in b] == [r["prompt_id"] for r in A.load_records(path)]


@pytest.mark.slow  # ~40 s: a tiny model made and two select_potential.py processes
def test_the_potential_memory_benchmark_runs_and_bounds_by_the_chunk(tmp_path):
    """benchmarks/potential_memory.py at a tiny size (two sizes, one chunk each): it runs from a
    fresh process, scores every record and writes its ratios."""
    import subprocess

    out = tmp_path / "potential.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks.potential_memory", "--rows", "40", "--scales", "1", "2",
                           "--response-words", "20", "--work-dir", str(tmp_path / "work"), "--output", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text(encoding="utf-8"))
    assert [(r["scale"], r["chunk"]) for r in result["runs"]] == [(1, 4096), (2, 4096)]
    assert all(r["peak_rss_mb"] > 0 and r["records"] > 30 and r["kept"] > 0 for r in result["runs"])
    assert set(result["ratios"]) == {"chunk 4096: 2x / 1x"}
