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
