"""One run over shards: the shards of a run, merged, are that run (zebra/shards.py, merge.py).

Equality, never timings (benchmarks/binarize_speed.py measures those): JSON and JSON lines byte
for byte, Parquet as the same table; the meta's counts and reliability summary as dicts.
"""

import json
import logging
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zebra.data import prompt_id, shard_of
from zebra.errors import ZebraError
from zebra.pipeline import BinarizeConfig, binarize, default_output
from zebra.records import read_records
from zebra.shards import ROW_FIELD, merge
from zebra.synthetic import make_rows

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path_factory.mktemp("hf_cache")))
    logging.disable(logging.WARNING)
    yield
    logging.disable(logging.NOTSET)


def _write_pool(path: Path, n: int, seed: int, repeats: list[tuple[int, int]] = ()) -> str:
    rows = list(make_rows(n, seed=seed, response_words=4, awkward_rate=0.3))
    for src, dst in repeats:  # one prompt in several rows: the copies must fall into one shard
        rows[dst % n]["instruction"] = rows[src % n]["instruction"]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def _run(strategy, output, data, **kw):
    extra = {"drop_sources": ("truthful_qa",)} if strategy == "baseline" else {}
    return binarize(BinarizeConfig(strategy, str(output), data, progress=False, **extra, **kw))


def _shards(strategy, folder, data, ext, count, **kw):
    paths = [folder / f"s{i}{ext}" for i in range(count)]
    for i, path in enumerate(paths):
        _run(strategy, path, data, num_shards=count, shard_index=i, **kw)
    return paths


def _same_output(a: Path, b: Path) -> bool:
    if a.suffix == ".parquet":
        return pq.read_table(a).equals(pq.read_table(b), check_metadata=True)
    return a.read_bytes() == b.read_bytes()


def _same_meta(one: dict, merged: dict) -> None:
    assert merged["counts"] == one["counts"]
    assert merged["reliability"] == one["reliability"]
    assert {**merged["settings"], "output": None} == {**one["settings"], "output": None}
    for key in ("data", "data_files", "behaviour_table"):
        assert merged[key] == one[key]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 60), seed=st.integers(0, 2**16), count=st.integers(2, 4),
       strategy=st.sampled_from(["sup", "sim", "sim_least", "sup_sim", "baseline"]),
       ext=st.sampled_from([".jsonl", ".json", ".parquet"]), batch_size=st.integers(1, 40),
       limit=st.one_of(st.none(), st.integers(1, 70)), max_entropy=st.sampled_from([None, 0.5]),
       repeats=st.lists(st.tuples(st.integers(0, 59), st.integers(0, 59)), max_size=5))
def test_shards_together_are_one_run(n, seed, count, strategy, ext, batch_size, limit, max_entropy, repeats):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = _write_pool(folder / "pool.jsonl", n, seed, repeats)
        kw = {"batch_size": batch_size, "limit": limit, "max_entropy": max_entropy}
        one = _run(strategy, folder / f"one{ext}", data, **kw)
        paths = _shards(strategy, folder, data, ext, count, **kw)
        merged = merge(list(reversed(paths)), folder / f"merged{ext}")  # any order of the shards
        assert _same_output(folder / f"one{ext}", folder / f"merged{ext}")
        _same_meta(one, merged)


def test_shipped_pool_in_four_shards_is_one_run(tmp_path):
    """The long-format pool (zebra.pools) through the same path, every script's default data."""
    one = _run("sup_sim", tmp_path / "one.json", None)
    paths = _shards("sup_sim", tmp_path, None, ".json", 4)
    merged = merge(paths, tmp_path / "merged.json")
    assert (tmp_path / "merged.json").read_bytes() == (tmp_path / "one.json").read_bytes()
    _same_meta(one, merged)
    assert merged["pool"] == one["pool"]
    # each shard holds its prompts only, with their input positions
    rows = [[r[ROW_FIELD] for r in read_records(p)] for p in paths]
    assert sum(map(len, rows)) == one["counts"]["rows_written"]
    assert all(r == sorted(r) for r in rows)


def test_num_proc_writes_what_one_process_writes(tmp_path):
    data = _write_pool(tmp_path / "pool.jsonl", 300, 7)
    one = _run("baseline", tmp_path / "one.jsonl", data, batch_size=64)
    two = _run("baseline", tmp_path / "two.jsonl", data, batch_size=64, num_proc=2)
    assert (tmp_path / "two.jsonl").read_bytes() == (tmp_path / "one.jsonl").read_bytes()
    _same_meta(one, two)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.jsonl", "one.jsonl.meta.json", "pool.jsonl",
                                                         "two.jsonl", "two.jsonl.meta.json"]  # no shard left


def test_shard_of_is_the_prompt_id_mod_s():
    ids = [prompt_id(t) for t in ("a", "b", "Write a poem.", "")]
    assert shard_of(ids, 7).tolist() == [int(i[:16], 16) % 7 for i in ids]


def test_a_shard_default_name_says_which(tmp_path):
    cfg = BinarizeConfig("sup", "x.json", num_shards=8, shard_index=3)
    assert default_output("out/sup.json", cfg) == "out/sup.shard-3-of-8.json"


@pytest.mark.parametrize("kw, message", [
    ({"num_shards": 4, "shard_index": 4}, "--shard-index must be"),
    ({"num_shards": 0}, "--num-shards must be"),
    ({"num_proc": 0}, "--num-proc must be"),
    ({"num_proc": 2, "num_shards": 2}, "--num-proc with --num-shards"),
    ({"num_shards": 2, "entropy_quantile": 0.5}, "--entropy-quantile takes its cut over the whole run"),
    ({"num_proc": 2, "entropy_quantile": 0.5}, "--entropy-quantile takes its cut over the whole run"),
])
def test_settings_that_cannot_shard_are_refused(tmp_path, kw, message):
    with pytest.raises(ZebraError, match=message) as err:
        _run("sup", tmp_path / "o.json", None, **kw)
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_num_proc_refuses_a_rule_it_cannot_send(tmp_path):
    cfg = BinarizeConfig("sup", str(tmp_path / "o.json"), progress=False, num_proc=2)
    with pytest.raises(ZebraError, match="top level"):
        binarize(cfg, rule=lambda c, s: None)


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    folder = tmp_path_factory.mktemp("three")
    data = _write_pool(folder / "pool.jsonl", 40, 1)
    return folder, data, _shards("sup", folder, data, ".jsonl", 3)


def _refused(paths, output, match):
    with pytest.raises(ZebraError, match=match) as err:
        merge(paths, output)
    assert "\n" not in str(err.value)
    assert not Path(output).exists()


def test_merge_refuses_a_missing_shard(three, tmp_path):
    _, _, paths = three
    _refused(paths[:2], tmp_path / "m.jsonl", "shard 2 of 3 missing")


def test_merge_refuses_a_shard_given_twice(three, tmp_path):
    _, _, paths = three
    _refused([*paths, paths[1]], tmp_path / "m.jsonl", "are both shard 1 of 3")


def test_merge_refuses_shards_of_another_count_or_settings(three, tmp_path):
    folder, data, paths = three
    _run("sup", tmp_path / "other.jsonl", data, num_shards=2, shard_index=1)
    _refused([*paths[:2], tmp_path / "other.jsonl"], tmp_path / "m.jsonl", "shard 1 of 2, but .* is of 3")
    _run("sup", tmp_path / "tau.jsonl", data, num_shards=3, shard_index=2, tau=0.3)
    _refused([*paths[:2], tmp_path / "tau.jsonl"], tmp_path / "m.jsonl", "tau 0.3, but .*: 0.1")


def test_merge_refuses_another_behaviour_table(tmp_path):
    data = _write_pool(tmp_path / "pool.jsonl", 40, 1)
    table = tmp_path / "table.csv"
    table.write_text((ROOT / "model_aware/benchmark.csv").read_text())
    paths = _shards("sup", tmp_path, data, ".jsonl", 3, benchmark=str(table))
    table.write_text(table.read_text() + "\n")  # same scores, other bytes: the file changed under the run
    _run("sup", paths[2], data, num_shards=3, shard_index=2, benchmark=str(table))
    _refused(paths, tmp_path / "m.jsonl", "another behaviour table sha256")
    for i in (0, 1):
        _run("sup", paths[i], data, num_shards=3, shard_index=i, benchmark=str(table))
    table.write_text(table.read_text() + "\n")  # and changed again before the merge
    _refused(paths, tmp_path / "m.jsonl", "not the behaviour table the shards read")


def test_merge_refuses_an_output_that_is_no_shard(three, tmp_path):
    folder, data, paths = three
    _run("sup", tmp_path / "whole.jsonl", data)
    _refused([*paths[:2], tmp_path / "whole.jsonl"], tmp_path / "m.jsonl", "not a shard's meta")
    _refused(paths, tmp_path / "m.parquet", "share one format")


def test_merge_refuses_a_shard_file_replaced_by_other_records(tmp_path):
    data = _write_pool(tmp_path / "pool.jsonl", 40, 1)
    paths = _shards("sup", tmp_path, data, ".jsonl", 2)
    _run("sup", tmp_path / "whole.jsonl", data)
    paths[1].write_bytes((tmp_path / "whole.jsonl").read_bytes())  # its meta left as it was
    _refused(paths, tmp_path / "m.jsonl", r"s1.jsonl:1: a record without 'input_row' at its end")


def test_mean_rating_is_asked_of_the_whole_run(tmp_path):
    """--score mean-rating needs ratings somewhere in the data: the merge asks it, not each shard
    (with one rated prompt, batches of one row leave the other shards without any rating)."""
    from zebra.data import ASPECTS, DataError

    rows = list(make_rows(30, seed=5, response_words=4))
    for i, row in enumerate(rows):
        for c in row["completions"]:
            c["annotations"] = {a: {"Rating": str(1 + (len(c["response"]) + j) % 5) if i == 7 else None}
                                for j, a in enumerate(ASPECTS)}
    data = tmp_path / "rated_once.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    one = _run("baseline", tmp_path / "one.jsonl", str(data), score="mean-rating", batch_size=1)
    paths = _shards("baseline", tmp_path, str(data), ".jsonl", 3, score="mean-rating", batch_size=1)
    merged = merge(paths, tmp_path / "merged.jsonl")
    assert (tmp_path / "merged.jsonl").read_bytes() == (tmp_path / "one.jsonl").read_bytes()
    _same_meta(one, merged)

    for c in rows[7]["completions"]:
        c["annotations"] = {a: {"Rating": None} for a in ASPECTS}
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(DataError, match="hold no aspect ratings"):
        _run("baseline", tmp_path / "none.jsonl", str(data), score="mean-rating")
    paths = _shards("baseline", tmp_path, str(data), ".jsonl", 3, score="mean-rating")
    with pytest.raises(DataError, match="hold no aspect ratings"):
        merge(paths, tmp_path / "merged_none.jsonl")
    assert not (tmp_path / "merged_none.jsonl").exists()
