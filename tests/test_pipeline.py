"""End to end: the shipped sample's awkward cases, every input and output format, atomic writes,
the meta file, and the four scripts from the shell."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zebra import pipeline
from zebra.data import SAMPLE, CacheFiles, DataError, batch_source, iter_batches, load_ultrafeedback, locate, prompt_id
from zebra.errors import ZebraError
from zebra.pipeline import BinarizeConfig, binarize
from zebra.pools import PoolOptions
from zebra.records import read_records
from zebra.synthetic import AWKWARD, UNKNOWN_MODEL, make_rows

ROOT = Path(__file__).resolve().parent.parent
BENCH = str(ROOT / "model_aware" / "benchmark.csv")
STRATEGIES = ["sup", "sim", "sim_least", "sup_sim", "baseline"]


def run(strategy, out, **kw):
    kw.setdefault("data", str(SAMPLE))  # the made-up sample's awkward cases (the default is the shipped pool)
    kw.setdefault("benchmark", BENCH)
    kw.setdefault("progress", False)
    if strategy == "baseline":
        kw.setdefault("drop_sources", ("truthful_qa",))
    return binarize(BinarizeConfig(strategy, str(out), **kw))


@pytest.fixture(scope="module")
def sample_rows():
    return [json.loads(line) for line in SAMPLE.read_text().splitlines()]


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("out")
    return {s: (run(s, d / f"{s}.json"), read_records(d / f"{s}.json")) for s in STRATEGIES}


def test_sample_is_what_the_generator_makes():
    # The shipped file is reproducible: same rows from the generator with its defaults.
    rows = [json.dumps(r, ensure_ascii=False) for r in make_rows(300, 0, 40, 0.05)]
    assert SAMPLE.read_text(encoding="utf-8").splitlines() == rows


def test_sample_holds_every_awkward_case(sample_rows):
    first = sample_rows[: len(AWKWARD)]
    by_case = dict(zip(AWKWARD, first))
    assert "ultralm-65b" in [c["model"] for c in by_case["ultralm-65b"]["completions"]]
    assert len(by_case["two-completions"]["completions"]) == 2
    assert len(by_case["three-completions"]["completions"]) == 3
    shuffled = by_case["shuffled-order"]
    assert [c["model"] for c in shuffled["completions"]] != shuffled["models"]
    assert by_case["empty-response"]["completions"][2]["response"].strip() == ""
    dup = by_case["duplicate-response"]["completions"]
    assert dup[3]["response"] == dup[1]["response"]
    assert UNKNOWN_MODEL in [c["model"] for c in by_case["unknown-model"]["completions"]]
    assert by_case["na-ratings"]["completions"][0]["annotations"]["honesty"]["Rating"] == "N/A"
    assert by_case["truthful-qa"]["source"] == "truthful_qa"


def test_awkward_cases_are_counted(outputs, sample_rows):
    meta, _ = outputs["sup"]
    c = meta["counts"]
    n_65b = sum(c_["model"] == "ultralm-65b" for r in sample_rows for c_ in r["completions"])
    n_unknown = sum(c_["model"] == UNKNOWN_MODEL for r in sample_rows for c_ in r["completions"])
    n_empty = sum(not c_["response"].strip() for r in sample_rows for c_ in r["completions"])
    assert c["model_missing_score"] == {"ultralm-65b": n_65b} and n_65b > 0
    assert c["model_not_in_table"] == {UNKNOWN_MODEL: n_unknown} and n_unknown > 0
    assert c["responses"]["empty"] == n_empty >= 1
    assert c["responses"]["duplicate_response"] >= 1
    assert c["responses"]["total"] == sum(len(r["completions"]) for r in sample_rows)
    assert c["rows_read"] == 300
    assert c["rows_written"] + sum(c["rows_skipped"].values()) == 300
    assert c["rows_written"] == len(outputs["sup"][1])


def test_no_record_uses_an_unrated_model_or_an_empty_or_identical_pair(outputs):
    for strategy in ("sup", "sim", "sim_least", "sup_sim"):
        for r in outputs[strategy][1]:
            chosen, rejected = r["chosen"][1]["content"], r["rejected"][1]["content"]
            assert chosen.strip() and rejected.strip() and chosen != rejected
            assert not set(r["most_similar_pair"]) & {"ultralm-65b", UNKNOWN_MODEL}
            assert r["mb_sup_chosen"] >= r["mb_sup_rejected"]


def test_responses_are_matched_by_their_own_model_field(outputs, sample_rows):
    rows = {r["instruction"]: r for r in sample_rows}
    for strategy in STRATEGIES:
        for rec in outputs[strategy][1]:
            row = rows[rec["prompt"]]
            by_model = {c["model"]: c["response"] for c in row["completions"]}
            chosen_model, rejected_model = rec["most_similar_pair"]
            assert rec["chosen"][1]["content"] == by_model[chosen_model]
            assert rec["rejected"][1]["content"] == by_model[rejected_model]
            assert rec["chosen"][0] == {"content": rec["prompt"], "role": "user"}
            assert rec["rejected"][0] == {"content": rec["prompt"], "role": "user"}
            assert rec["prompt_id"] == prompt_id(rec["prompt"])


def test_record_format(outputs):
    rec = outputs["sup"][1][0]
    assert list(rec)[:9] == ["prompt", "prompt_id", "most_similar_pair", "chosen", "rejected", "kinship_rank",
                             "mb_sup_chosen", "mb_sup_rejected", "mb_sim"]
    assert [m["role"] for m in rec["chosen"]] == ["user", "assistant"]
    assert isinstance(rec["kinship_rank"], int) and rec["kinship_rank"] >= 1


def test_sim_pairs_are_more_alike_than_least_and_sup_pairs_better(outputs):
    mean = lambda s, f: np.mean([r[f] for r in outputs[s][1]])  # noqa: E731
    assert mean("sim", "mb_sim") > mean("sup_sim", "mb_sim") > mean("sim_least", "mb_sim")
    assert mean("sup", "mb_sup_chosen") >= mean("sup_sim", "mb_sup_chosen") >= mean("sim", "mb_sup_chosen")
    assert all(r["kinship_rank"] == 1 for r in outputs["sim"][1])


def test_baseline(outputs, sample_rows):
    meta, recs = outputs["baseline"]
    n_tqa = sum(r["source"] == "truthful_qa" for r in sample_rows)
    assert meta["counts"]["rows_skipped"]["dropped_source"] == n_tqa > 0
    assert all(r["score_chosen"] > r["score_rejected"] for r in recs)
    rows = {r["instruction"]: r for r in sample_rows}
    for rec in recs:
        scores = [c["overall_score"] for c in rows[rec["prompt"]]["completions"] if c["response"].strip()]
        assert rec["score_chosen"] == max(scores)
        assert rows[rec["prompt"]]["source"] != "truthful_qa"


def test_baseline_is_reproducible_and_survives_batching(tmp_path):
    a = read_records_after(run("baseline", tmp_path / "a.json", seed=1))
    b = read_records_after(run("baseline", tmp_path / "b.json", seed=1, batch_size=7))
    c = read_records_after(run("baseline", tmp_path / "c.json", seed=2))
    assert a == b
    assert [r["most_similar_pair"] for r in a] != [r["most_similar_pair"] for r in c]


def read_records_after(meta):
    return read_records(meta["settings"]["output"])


def test_baseline_mean_rating_ignores_na(tmp_path, sample_rows):
    meta = run("baseline", tmp_path / "m.json", score="mean-rating")
    rows = {r["instruction"]: r for r in sample_rows}
    for rec in read_records(tmp_path / "m.json"):
        comp = {c["model"]: c for c in rows[rec["prompt"]]["completions"]}
        ratings = [float(a["Rating"]) for a in comp[rec["most_similar_pair"][0]]["annotations"].values()
                   if a["Rating"] != "N/A"]
        assert rec["score_chosen"] == pytest.approx(np.mean(ratings))
    assert meta["counts"]["rows_written"] > 250


def test_selection_does_not_depend_on_batch_size(tmp_path):
    for strategy in ("sup", "sup_sim"):
        a = read_records_after(run(strategy, tmp_path / "a.json"))
        b = read_records_after(run(strategy, tmp_path / "b.json", batch_size=13))
        assert a == b


@pytest.mark.parametrize("fmt", ["json", "jsonl", "parquet"])
def test_output_formats_round_trip(tmp_path, outputs, fmt):
    run("sup", tmp_path / f"x.{fmt}")
    assert read_records(tmp_path / f"x.{fmt}") == outputs["sup"][1]


def test_input_formats(tmp_path, outputs):
    """json list, jsonl, parquet, arrow and a save_to_disk folder all give the same pairs."""
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines()][:60]
    (tmp_path / "list.json").write_text(json.dumps(rows))
    (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    ds = datasets.Dataset.from_list(rows)
    ds.to_parquet(str(tmp_path / "rows.parquet"))
    ds.save_to_disk(str(tmp_path / "saved"))
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "saved_dict"))
    arrow_file = next((tmp_path / "saved").glob("*.arrow"))
    expected = outputs["sup"][1][: len(read_records_after(run("sup", tmp_path / "ref.json", limit=60)))]
    for source in ("list.json", "rows.jsonl", "rows.parquet", "saved", "saved_dict", str(arrow_file)):
        got = read_records_after(run("sup", tmp_path / "o.json", data=str(tmp_path / source)))
        assert got == expected, source


def test_cache_files_are_read_plainly_and_give_the_datasets_rows(tmp_path):
    """batch_source keeps only the cache file names when they are exactly the dataset; reading
    them batch by batch gives the rows `datasets` gives, across batch and file boundaries."""
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    ds = datasets.concatenate_datasets([datasets.Dataset.from_list(rows[:130]), datasets.Dataset.from_list(rows[130:])])
    ds.save_to_disk(str(tmp_path / "saved"), num_shards=3)  # three cache files
    ds = load_ultrafeedback(tmp_path / "saved")
    source = batch_source(ds)
    assert isinstance(source, CacheFiles) and len(source.paths) == 3 and len(source) == len(rows)
    expected = ds.with_format("arrow").iter(batch_size=len(rows))
    expected = next(iter(expected)).to_pylist()
    for batch_size in (7, 64, 1000):
        got = [r for table in iter_batches(source, batch_size) for r in table.to_pylist()]
        assert got == expected
        assert all(t.num_rows == batch_size for t in list(iter_batches(source, batch_size))[:-1])
    limited = load_ultrafeedback(tmp_path / "saved", limit=50)  # a slice is not the files: read through datasets
    assert batch_source(limited) is limited
    assert [r for t in iter_batches(limited, 16) for r in t.to_pylist()] == expected[:50]


def test_bad_data_fails_clearly(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        load_ultrafeedback(tmp_path / "missing.jsonl")
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="unknown data format"):
        load_ultrafeedback(tmp_path / "x.csv")
    (tmp_path / "wrong.jsonl").write_text(json.dumps({"prompt": "p", "chosen": "c"}) + "\n")
    with pytest.raises(DataError, match="no 'instruction' field"):
        load_ultrafeedback(tmp_path / "wrong.jsonl")


def test_interrupted_run_leaves_no_file(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = pipeline.process_batch

    def explode(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(pipeline, "process_batch", explode)
    for fmt in ("json", "parquet"):
        calls["n"] = 0
        with pytest.raises(KeyboardInterrupt):
            run("sup", tmp_path / f"out.{fmt}", batch_size=20)
    assert list(tmp_path.iterdir()) == []


def test_existing_output_survives_a_failed_run(tmp_path, monkeypatch):
    out = tmp_path / "out.json"
    run("sup", out)
    before = out.read_bytes()
    monkeypatch.setattr(pipeline, "build_records", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        run("sup", out)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json", "out.json.meta.json"]


def test_meta_file(outputs, tmp_path):
    meta = run("sup_sim", tmp_path / "c.json", rank_weight=0.3, similarity_weight=0.7, tau=0.2)
    on_disk = json.loads((tmp_path / "c.json.meta.json").read_text())
    assert on_disk == meta
    assert meta["settings"]["rank_weight"] == 0.3 and meta["settings"]["tau"] == 0.2
    c = meta["counts"]
    assert sum(c["chosen_by_model"].values()) == sum(c["rejected_by_model"].values()) == c["rows_written"]
    hist = {int(k): v for k, v in c["kinship_rank_histogram"].items()}
    assert sum(hist.values()) == c["rows_written"]
    assert c["kinship_rank_mean"] == pytest.approx(sum(k * v for k, v in hist.items()) / c["rows_written"])
    assert meta["behaviour_table"]["excluded_missing_score"] == ["ultralm-65b"]
    assert meta["behaviour_table"]["sha256"] == hashlib.sha256(Path(BENCH).read_bytes()).hexdigest()
    assert set(meta["versions"]) >= {"python", "numpy", "pyarrow", "datasets"}
    assert meta["seconds"]["total"] > 0


def test_unknown_models_skipped_with_a_named_warning(tmp_path, caplog):
    run("sup", tmp_path / "o.json")
    assert f"model not in {BENCH}: {UNKNOWN_MODEL} (" in caplog.text
    assert "missing score" in caplog.text and "ultralm-65b (" in caplog.text


def test_own_table_with_fewer_models(tmp_path):
    """A user's table: three models only, other benchmark names. Everything else is skipped, counted."""
    table = tmp_path / "mine.csv"
    table.write_text("Model,A,B\ngpt-4,90%,0.8\nalpaca-7b,40%,0.3\nstarchat,30%,0.5\n")
    meta = run("sup", tmp_path / "o.json", benchmark=str(table))
    recs = read_records(tmp_path / "o.json")
    assert recs and all(set(r["most_similar_pair"]) <= {"gpt-4", "alpaca-7b", "starchat"} for r in recs)
    assert "llama-2-7b-chat" in meta["counts"]["model_not_in_table"]
    assert meta["counts"]["rows_skipped"]["fewer_than_two_usable"] > 100


def test_bad_settings_fail_before_work(tmp_path):
    with pytest.raises(ZebraError, match="unknown output format"):
        run("sup", tmp_path / "o.txt")
    with pytest.raises(ZebraError, match="--limit"):
        run("sup", tmp_path / "o.json", limit=0)
    assert not (tmp_path / "o.json").exists()


def test_fresh_generated_data_matches_per_row_reading(tmp_path):
    """On data the tests did not hand-build (another seed), SUP/SIM agree with a per-row reading of SPEC §4."""
    from zebra.behaviour import read_benchmark

    path = tmp_path / "fresh.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in make_rows(150, seed=123)))
    t = read_benchmark(BENCH)
    for strategy in ("sup", "sim"):
        recs = {r["prompt"]: r for r in read_records_after(run(strategy, tmp_path / "o.json", data=str(path)))}
        for row in make_rows(150, seed=123):
            # a text several models give is credited to the best-ranked of them (MB-SUP, then table order)
            best: dict[str, str] = {}
            for c in row["completions"]:
                if c["model"] in t.index and c["response"].strip():
                    other = best.get(c["response"])
                    rank = lambda m: (t.mb_sup[t.index[m]], -t.index[m])  # noqa: E731
                    if other is None or rank(c["model"]) > rank(other):
                        best[c["response"]] = c["model"]
            usable = list(best.values())
            if len(usable) < 2:
                assert row["instruction"] not in recs
                continue
            i = [t.index[m] for m in usable]
            if strategy == "sup":
                order = sorted(i, key=lambda m: (-t.mb_sup[m], m))
                want = [t.models[order[0]], t.models[order[1]]]
            else:
                pairs = [(t.mb_sim[a, b], a, b) for x, a in enumerate(i) for b in i[x + 1:]]
                _, a, b = max(pairs, key=lambda p: p[0])
                want = sorted([t.models[a], t.models[b]], key=lambda m: -t.mb_sup[t.index[m]])
            assert recs[row["instruction"]]["most_similar_pair"] == want


@pytest.mark.parametrize("script, args, default_out", [
    ("binarize_score.py", [], "UltraFeedback.similarity.anchor.json"),
    ("binarize_similarity.py", [], "UltraFeedback.most.score_ranking.no_ultra65.json"),
    ("binarize_similarity.py", ["--order", "least"], "UltraFeedback.least.score_ranking.no_ultra65.json"),
    ("binarize_combined.py", ["--rank-weight", "1", "--similarity-weight", "0"], "UltraFeedback.combined.json"),
    ("binarize_baseline.py", ["--score", "mean-rating"], "UltraFeedback.baseline.json"),
])
def test_scripts_from_the_shell(tmp_path, script, args, default_out):
    out = tmp_path / "o.jsonl"
    proc = subprocess.run([sys.executable, str(ROOT / script), "--output", str(out), "--limit", "80", *args,
                           "--data", str(ROOT / "data" / "ultrafeedback_sample.jsonl")],  # its awkward cases
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout and str(out) in proc.stdout
    recs = read_records(out)
    assert 60 < len(recs) <= 80
    assert json.loads(Path(f"{out}.meta.json").read_text())["settings"]["limit"] == 80
    help_text = subprocess.run([sys.executable, str(ROOT / script), "--help"], cwd=ROOT,
                               capture_output=True, text=True, timeout=60).stdout
    if "least" not in args:  # the least name is shown only in the docstring
        assert default_out in help_text.replace("\n", "").replace(" ", "")
    assert "(default: data/alpaca_eval)" in help_text.replace("\n", " ").replace("  ", " ")  # the shipped real pool


def test_scripts_bad_input_is_one_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("Model,x\na,1\nb,oops\n")
    proc = subprocess.run([sys.executable, str(ROOT / "binarize_score.py"), "--behaviour-table", str(bad),
                           "--output", str(tmp_path / "o.json")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "row 3 (b), column 'x': 'oops' is not a number" in last
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o.json").exists()


def test_output_under_a_file_is_one_line_before_any_work(tmp_path):
    (tmp_path / "taken").write_text("a file, not a folder")
    out = tmp_path / "taken" / "o.json"
    proc = subprocess.run([sys.executable, str(ROOT / "binarize_combined.py"), "--output", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last == f"error: {out}: {tmp_path / 'taken'} is a file, not a folder; choose another --output"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_background_writer_writes_the_same_file_and_fails_without_leaving_one(tmp_path, outputs):
    from zebra.records import RecordWriter

    records = outputs["sup"][1]
    chunks = [records[:50], [], records[50:170], records[170:]]
    for fmt in ("json", "jsonl", "parquet"):
        for background in (False, True):
            with RecordWriter(tmp_path / f"{background}.{fmt}", background=background) as writer:
                for chunk in chunks:
                    writer.write(chunk)
        if fmt != "parquet":
            assert (tmp_path / f"True.{fmt}").read_bytes() == (tmp_path / f"False.{fmt}").read_bytes()
        assert read_records(tmp_path / f"True.{fmt}") == records
    bad = tmp_path / "bad.jsonl"
    with pytest.raises(TypeError, match="not JSON serializable"):
        with RecordWriter(bad, background=True) as writer:
            writer.write(records[:5])
            writer.write([{"prompt": {1, 2}}])  # fails in the thread; raised by a later call
            writer.write(records[5:10])
    assert not bad.exists() and not list(tmp_path.glob(".bad.jsonl*"))


def test_two_readme_lines_no_longer_share_a_default_file(tmp_path):
    """`binarize_baseline.py` then `binarize_baseline.py --score mean-rating` (consecutive README
    lines) used to write the same default file, the second run replacing the first's pairs."""
    def baseline(*extra):
        proc = subprocess.run([sys.executable, str(ROOT / "binarize_baseline.py"), "--behaviour-table", BENCH,
                               "--data", str(SAMPLE), "--limit", "40", *extra],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return sorted(p.name for p in (tmp_path / "model_aware").glob("*.json") if not p.name.endswith(".meta.json"))

    first = baseline()
    assert first == ["UltraFeedback.baseline.data-ultrafeedback_sample.limit-40.json"]
    kept = (tmp_path / "model_aware" / first[0]).read_bytes()
    assert baseline("--score", "mean-rating") == [
        "UltraFeedback.baseline.data-ultrafeedback_sample.limit-40.json",
        "UltraFeedback.baseline.data-ultrafeedback_sample.score-mean-rating.limit-40.json"]
    assert (tmp_path / "model_aware" / first[0]).read_bytes() == kept


@pytest.mark.parametrize("strategy, base, settings, name", [
    ("sup", "model_aware/UltraFeedback.similarity.anchor.json", {}, "model_aware/UltraFeedback.similarity.anchor.json"),
    ("sup", "a/S.json", {"tau": 0.9, "entropy_quantile": 0.5}, "a/S.tau-0.9.entropy_quantile-0.5.json"),
    ("sup", "S.json", {"rank_weight": 0.9, "seed": 7, "score": "mean-rating"}, "S.json"),  # not SUP's settings
    ("sim_least", "L.jsonl", {"max_entropy": 0.45, "reliability_temperature": 0.5}, "L.max_entropy-0.45.reliability_temperature-0.5.jsonl"),
    ("sup_sim", "C.json", {"rank_weight": 0.5, "similarity_weight": 0.5}, "C.json"),
    ("sup_sim", "C.json", {"rank_weight": 1.0, "similarity_weight": 0.0}, "C.rank_weight-1.similarity_weight-0.json"),
    ("baseline", "B.json", {"drop_sources": ("truthful_qa",), "tau": 0.5}, "B.json"),
    ("baseline", "B.json", {"drop_sources": (), "only_rated": True, "seed": 7}, "B.seed-7.drop_sources-none.only_rated.json"),
    ("sup", "S.parquet", {"data": "openbmb/UltraFeedback", "limit": 80}, "S.data-UltraFeedback.limit-80.parquet"),
    ("sup", "S.json", {"data": "/m/uf v2.parquet"}, "S.data-uf-v2.json"),
    # the scripts' default --data is the shipped pool: not named; the pool's pair-changing options are
    ("sup", "S.json", {"data": "data/alpaca_eval"}, "S.json"),
    ("sup", "S.json", {"data": str(ROOT / "data" / "alpaca_eval")}, "S.json"),
    ("sup", "S.json", {"data": "data/alpaca_eval", "pool": PoolOptions(models_per_prompt=4)}, "S.k-4.json"),
    ("sim", "S.json", {"pool": PoolOptions(models_per_prompt=4, seed=7, judged_only=True,
                                           judgments="x/turbo.jsonl")}, "S.judgments-turbo.judged_only.k-4.seed-7.json"),
    ("sup", "S.json", {"pool": PoolOptions(seed=7, model_names="m.csv")}, "S.model_names-m.json"),  # no draw: seed unused
])
def test_default_output_names_the_settings_that_change_the_pairs(strategy, base, settings, name):
    assert pipeline.default_output(base, BinarizeConfig(strategy, base, **settings)) == name


def test_meta_lists_only_the_settings_of_its_strategy(tmp_path):
    sup = run("sup", tmp_path / "s.json", limit=30)["settings"]
    assert sup["tau"] == 0.1 and sup["limit"] == 30 and sup["strategy"] == "sup"
    assert not {"rank_weight", "similarity_weight", "score", "drop_sources", "only_rated", "seed"} & set(sup)
    combined = run("sup_sim", tmp_path / "c.json", limit=30)["settings"]
    assert combined["rank_weight"] == combined["similarity_weight"] == 0.5 and "score" not in combined
    base = run("baseline", tmp_path / "b.json", limit=30)["settings"]
    assert base["score"] == "overall" and base["drop_sources"] == ["truthful_qa"] and base["seed"] == 42
    assert not {"tau", "rank_weight", "similarity_weight"} & set(base)
    assert {"output", "data", "benchmark", "max_entropy", "entropy_quantile", "reliability_temperature"} <= set(base)


def test_meta_carries_what_training_and_the_tables_read(tmp_path):
    """The settings the training engineer copies into settings.json (read with .get()): the strategy
    and its settings, the data and how it was drawn, and which table (by its bytes) made the pairs."""
    table = tmp_path / "table.csv"
    table.write_bytes(Path(BENCH).read_bytes().replace(b"86.40%", b"86.30%"))  # another table, same models
    meta = run("sup_sim", tmp_path / "c.json", benchmark=str(table), data=str(ROOT / "data" / "alpaca_eval"), limit=20,
               rank_weight=0.25, similarity_weight=0.75, tau=0.2, pool=PoolOptions(models_per_prompt=4, seed=3), seed=3)
    s = meta["settings"]
    assert (s["strategy"], s["tau"], s["rank_weight"], s["similarity_weight"], s["limit"]) == ("sup_sim", 0.2, 0.25, 0.75, 20)
    assert (s["data"], s["benchmark"]) == (str(ROOT / "data" / "alpaca_eval"), str(table))
    assert (s["pool"]["models_per_prompt"], s["pool"]["seed"]) == (4, 3)
    assert meta["behaviour_table"]["sha256"] == hashlib.sha256(table.read_bytes()).hexdigest()
    assert meta["behaviour_table"]["sha256"] != hashlib.sha256(Path(BENCH).read_bytes()).hexdigest()
    assert run("baseline", tmp_path / "b.json", limit=5, seed=9)["settings"]["seed"] == 9


# The pairs every strategy writes on the shipped pool (make demo) and the sample, as a digest of the
# sorted "prompt_id chosen rejected" lines: a change of selection shows here, and on purpose only.
# Last changed by the order-free rules (SPEC §3): a repeated text goes to the best-ranked model's copy
# (pool: SUP 10, SIM-least 13, SUP+SIM 10 pairs changed; sample: 1-2 each), the baseline draws by
# (seed, prompt, model) (pool 310 of 351, sample 205 of 295 changed).
PAIRS = {
    "alpaca_eval/sup": (403, "577425d15864f828"),
    "alpaca_eval/sim": (403, "3a644ee7178a77ba"),
    "alpaca_eval/sim_least": (403, "fc2f082093da5a4c"),
    "alpaca_eval/sup_sim": (403, "7fd6f60474625abe"),
    "alpaca_eval/baseline": (351, "adac90cb6ee5c9b6"),
    "ultrafeedback_sample/sup": (299, "d1e893a7fc35c882"),
    "ultrafeedback_sample/sim": (299, "05270294df240ab1"),
    "ultrafeedback_sample/sim_least": (299, "126c55077382131a"),
    "ultrafeedback_sample/sup_sim": (299, "1690ca2145eab0b5"),
    "ultrafeedback_sample/baseline": (295, "93994019775fe0ee"),
}


@pytest.mark.parametrize("name", PAIRS)
def test_pairs_of_the_shipped_data(tmp_path, name):
    import hashlib

    data, strategy = name.split("/")
    source = ROOT / "data" / ("alpaca_eval" if data == "alpaca_eval" else "ultrafeedback_sample.jsonl")
    extra = {"drop_sources": ("truthful_qa",)} if strategy == "baseline" else {}
    binarize(BinarizeConfig(strategy, str(tmp_path / "o.json"), data=str(source), benchmark=BENCH, progress=False, **extra))
    pairs = sorted(f"{r['prompt_id']} {r['most_similar_pair'][0]} {r['most_similar_pair'][1]}"
                   for r in read_records(tmp_path / "o.json"))
    assert (len(pairs), hashlib.sha256("\n".join(pairs).encode()).hexdigest()[:16]) == PAIRS[name]


def test_one_default_source_the_shipped_pool(tmp_path, monkeypatch):
    """No --data means the shipped real pool, for the library as for the scripts (it meant the
    made-up sample in BinarizeConfig and the real pool in the scripts)."""
    from zebra.data import DEFAULT_DATA, locate

    where = locate()
    assert where.kind == "pool" and Path(where.source) == DEFAULT_DATA == ROOT / "data" / "alpaca_eval"
    assert {p.name for p in where.files} == {"pool.json", "model_outputs.jsonl", "model_names.csv",
                                             "annotations_alpaca_eval_gpt4.jsonl"}
    assert locate(str(SAMPLE)).kind == "ultrafeedback" and locate(str(SAMPLE)).files == (SAMPLE,)
    monkeypatch.chdir(tmp_path)  # not from the checkout: the default does not depend on the working directory
    meta = binarize(BinarizeConfig("sup", str(tmp_path / "o.json"), benchmark=BENCH, limit=5, progress=False))
    assert meta["counts"]["rows_read"] == 5 and meta["pool"]["prompts"] == 5
    assert meta["data"] == str(DEFAULT_DATA)


@pytest.mark.parametrize("script, rule, strategy, settings", [
    ("binarize_score.py", "sup", "sup", {"tau": 0.6}),
    ("binarize_similarity.py", "sim", "sim", {"tau": 0.6}),
    ("binarize_similarity.py", "sim", "sim_least", {"tau": 0.6}),
    ("binarize_combined.py", "sup_sim", "sup_sim", {"tau": 0.6, "rank_weight": 0.8, "similarity_weight": 0.3}),
    ("binarize_baseline.py", "baseline", "baseline", {"seed": 5, "score": "mean-rating"}),
])
def test_each_script_states_its_strategys_rule(tmp_path, script, rule, strategy, settings):
    """The rule a script shows (binarize_score.py's `sup`, …) is the rule its strategy runs: the
    same pairs as the library's default_rule for that strategy, with settings away from the defaults."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(script[:-3], ROOT / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, how in (("default.json", None), ("script.json", getattr(module, rule))):
        binarize(BinarizeConfig(strategy, str(tmp_path / name), data=str(SAMPLE), benchmark=BENCH, progress=False,
                                **settings), rule=how)
    assert read_records(tmp_path / "script.json") == read_records(tmp_path / "default.json")
    assert len(read_records(tmp_path / "script.json")) > 200


def _record_set(path) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True) for r in read_records(path))


def test_the_shipped_pool_reversed_gives_the_same_pairs(tmp_path):
    """Issue 19 §1: with `tac model_outputs.jsonl` SUP differed on 12 of 403 prompts (the first copy of
    a repeated text was kept: on `Write "Test"` alpaca-7b's, not gpt-4's) and the baseline on all 351."""
    pool = ROOT / "data" / "alpaca_eval"
    lines = (pool / "model_outputs.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    (tmp_path / "pool").mkdir()
    (tmp_path / "pool" / "model_outputs.jsonl").write_text("".join(reversed(lines)), encoding="utf-8")
    manifest = json.loads((pool / "pool.json").read_text())
    for name in ("model_names", "judgments"):
        manifest[name] = str(pool / manifest[name])
    (tmp_path / "pool" / "pool.json").write_text(json.dumps(manifest))
    for strategy in STRATEGIES:
        metas = [run(strategy, tmp_path / f"{n}.json", data=str(d)) for n, d in (("a", pool), ("b", tmp_path / "pool"))]
        assert _record_set(tmp_path / "a.json") == _record_set(tmp_path / "b.json"), strategy
        assert metas[0]["counts"] | {"chosen_by_model": 0, "rejected_by_model": 0} == \
            metas[1]["counts"] | {"chosen_by_model": 0, "rejected_by_model": 0}
        assert metas[0]["counts"]["chosen_by_model"] == metas[1]["counts"]["chosen_by_model"]


def test_the_sample_shuffled_gives_the_same_pairs(tmp_path, sample_rows):
    """Issue 19 §1: the sample with rows and each row's completions shuffled changed SUP, SIM and
    SUP+SIM pairs on a prompt or two and the baseline's on 207 of 295."""
    import random

    rng = random.Random(0)
    rows = [dict(r, completions=list(r["completions"])) for r in sample_rows]
    rng.shuffle(rows)
    for r in rows:
        rng.shuffle(r["completions"])
    (tmp_path / "shuffled.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    for strategy, extra in [(s, {}) for s in STRATEGIES] + [("baseline", {"score": "mean-rating"})]:
        run(strategy, tmp_path / "a.json", **extra)
        run(strategy, tmp_path / "b.json", data=str(tmp_path / "shuffled.jsonl"), **extra)
        assert _record_set(tmp_path / "a.json") == _record_set(tmp_path / "b.json"), (strategy, extra)


@pytest.mark.parametrize("target", ["responses", "model_names", "judgments", "meta_of_responses"])
def test_no_output_replaces_a_file_the_pools_manifest_names(tmp_path, target):
    """Issue 19 §3: --output equal to a file that pool.json names (responses, judgments, names map)
    was replaced by the pairs. Every file the run reads counts, however it was named."""
    shipped = ROOT / "data" / "alpaca_eval"
    keep = tmp_path / "keep"
    keep.mkdir()
    files = {"responses": "model_outputs.jsonl", "model_names": "model_names.csv",
             "judgments": "annotations_alpaca_eval_gpt4.jsonl"}
    for name in files.values():
        (keep / name).write_bytes((shipped / name).read_bytes())
    pool = tmp_path / "pool"
    pool.mkdir()
    (pool / "pool.json").write_text(json.dumps({k: f"../keep/{v}" for k, v in files.items()}))
    before = {p.name: p.read_bytes() for p in keep.iterdir()}
    name = files[target.replace("meta_of_", "")]
    out = keep / (f"{name[:-6]}.json" if target.startswith("meta_of") else name)  # X.json.meta.json ≠ X.jsonl
    if target == "meta_of_responses":  # the meta file beside the output is the input
        out = keep / "m.json"
        os.symlink(keep / files["responses"], keep / "m.json.meta.json")
    with pytest.raises(ZebraError, match="would overwrite the input"):
        run("sup", out, data=str(pool), limit=3)
    assert {p.name: p.read_bytes() for p in keep.iterdir() if not p.is_symlink()} == before


def test_the_meta_lists_every_file_the_data_was_read_from(tmp_path):
    meta = run("sup", tmp_path / "o.json", data=str(ROOT / "data" / "alpaca_eval"), limit=3)
    assert [Path(p).name for p in meta["data_files"]] == [
        "pool.json", "model_names.csv", "annotations_alpaca_eval_gpt4.jsonl", "model_outputs.jsonl"]
    assert meta["data_files"] == [str(p) for p in locate(str(ROOT / "data" / "alpaca_eval")).files]


BIG_TABLE_MODELS = 10_000  # seen failing at 2,000 (265 MB); the old code at 10,000: 5.7 GB, 95 s


def test_a_huge_behaviour_table_costs_what_the_models_in_use_cost(tmp_path):
    """Issue 19 §6: a 10,000-model table took 95 s and 5.7 GB for 403 prompts (M×M agreement and
    MB-SIM matrices, MB-SIM built three times per batch). Only the models a batch uses are paired
    now: peak memory stays far below one M×M float matrix (800 MB at 10,000 models)."""
    import tracemalloc

    from zebra.behaviour import read_benchmark

    rng = np.random.default_rng(0)
    rated = list(read_benchmark(BENCH).models)  # the sample's models, then many it never uses
    names = [*rated, *(f"extra-{i}" for i in range(BIG_TABLE_MODELS - len(rated)))]
    table = tmp_path / "big.csv"
    table.write_text("Model,A,B,C,D,E,F\n" + "".join(
        f"{name},{','.join(f'{x:.2f}' for x in rng.uniform(20, 90, 6))}\n" for name in names), encoding="utf-8")
    tracemalloc.start()
    try:
        meta = run("sup", tmp_path / "big.json", benchmark=str(table), entropy_quantile=0.5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 150e6, f"peak {peak / 1e6:.0f} MB"
    assert len(meta["behaviour_table"]["models"]) == BIG_TABLE_MODELS and meta["counts"]["rows_written"] > 100
    sup = meta["behaviour_table"]["mb_sup"]
    for r in read_records(tmp_path / "big.json"):
        assert round(r["mb_sup_chosen"], 6) == sup[r["most_similar_pair"][0]] >= sup[r["most_similar_pair"][1]]


def test_two_runs_writing_one_output_leave_records_and_meta_of_one_run(tmp_path):
    """Issue 19 §6: run A (--limit 3) stalls just after renaming its meta file; run B (--limit 40)
    writes the same --output meanwhile; A then renames its records. Records of A beside B's meta
    said 40 when 3 were there. The two renames are one step now (a lock): B waits for A."""
    out = tmp_path / "o.json"
    driver = tmp_path / "driver.py"
    driver.write_text(f"""
import os, sys, time
from pathlib import Path
sys.path.insert(0, {str(ROOT)!r})
from zebra import records
from zebra.pipeline import BinarizeConfig, binarize
name, limit = sys.argv[1], int(sys.argv[2])
signals = Path({str(tmp_path)!r})
real_replace, real_commit = os.replace, records.RecordWriter.commit
def stalling_replace(src, dst):
    real_replace(src, dst)
    if name == "A" and str(dst).endswith(".meta.json"):  # between the meta's rename and the records'
        (signals / "A_stalled").touch()
        for _ in range(600):
            if (signals / "release").exists():
                break
            time.sleep(0.05)
def announcing_commit(self, meta=None):
    (signals / f"{{name}}_commits").touch()
    return real_commit(self, meta)
records.os.replace = stalling_replace
records.RecordWriter.commit = announcing_commit
binarize(BinarizeConfig("sup", {str(out)!r}, data={str(SAMPLE)!r}, benchmark={BENCH!r}, limit=limit, progress=False))
""")
    import time

    def wait_for(path, seconds=120):
        for _ in range(int(seconds / 0.05)):
            if path.exists():
                return True
            time.sleep(0.05)
        return False

    a = subprocess.Popen([sys.executable, str(driver), "A", "3"], stderr=subprocess.DEVNULL)
    try:
        assert wait_for(tmp_path / "A_stalled")
        b = subprocess.Popen([sys.executable, str(driver), "B", "40"], stderr=subprocess.DEVNULL)
        assert wait_for(tmp_path / "B_commits")
        time.sleep(2)  # unlocked, B's renames would happen now, inside A's
        (tmp_path / "release").touch()
        assert a.wait(timeout=120) == 0 and b.wait(timeout=120) == 0
    finally:
        a.kill()
    meta = json.loads(Path(f"{out}.meta.json").read_text())
    assert meta["counts"]["rows_written"] == len(read_records(out)) == meta["settings"]["limit"] == 40


@settings(max_examples=100, deadline=None, database=None)
@given(st.lists(st.tuples(st.text(), st.one_of(st.text(), st.none())), max_size=8), st.integers(0, 3))
def test_message_lists_hold_each_prompt_and_response(pairs, cut):
    """_messages_array reads the two messages of a row out of one joined text by offsets: against
    the lists written out, on sliced inputs of both string widths and any Unicode (a null text, which
    records never hold, takes the plain way and stays null)."""
    prompts = pa.array(["x"] * cut + [p for p, _ in pairs], pa.large_string())[cut:]
    responses = pa.array([r for _, r in pairs] + ["y"] * cut, pa.string())[:len(pairs)]
    got = pipeline._messages_array(prompts, responses)
    got.validate(full=True)
    assert got.to_pylist() == [[{"content": p, "role": "user"}, {"content": r, "role": "assistant"}] for p, r in pairs]
