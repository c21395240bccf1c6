"""The speed benchmark runs, and the fast path writes the same pairs as the per-row reference.

No timing is asserted here: timings belong to benchmarks/binarize_speed.py and its results file.
"""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.reference_iterrows import reference_binarize
from zebra.pipeline import BinarizeConfig, binarize
from zebra.records import read_records
from zebra.synthetic import make_rows

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))
    logging.disable(logging.WARNING)
    yield
    logging.disable(logging.NOTSET)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    """Many awkward rows (short rows, repeats, unknown models, N/A ratings, truthful_qa)."""
    path = tmp_path_factory.mktemp("speed") / "uf.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for row in make_rows(400, seed=3, response_words=6, awkward_rate=0.4):
            fh.write(json.dumps(row) + "\n")
    return str(path)


def _pairs(path):
    # pandas' to_json (the reference's writer, as in the original) keeps 10 significant digits
    rounded = lambda v: None if v is None else round(v, 8)  # noqa: E731
    return [(r["prompt"], tuple(r["most_similar_pair"]), r["chosen"][1]["content"], r["rejected"][1]["content"],
             r["kinship_rank"], rounded(r.get("mb_sim")), r.get("score_chosen"), r.get("score_rejected"))
            for r in read_records(path)]


def _both(tmp_path, data, strategy, benchmark="model_aware/benchmark.csv", **settings):
    ref_settings = dict(settings)
    fast_settings = dict(settings)
    if strategy == "baseline":
        fast_settings["drop_sources"] = ("truthful_qa",)
    else:
        ref_settings.pop("score", None)
    benchmark = str(ROOT / benchmark) if not os.path.isabs(benchmark) else benchmark
    binarize(BinarizeConfig(strategy, str(tmp_path / "fast.jsonl"), data, benchmark, progress=False,
                            batch_size=97, **fast_settings))  # several batches, one ragged
    reference_binarize(data, str(tmp_path / "ref.json"), strategy, benchmark, save_every=150, **ref_settings)
    return _pairs(tmp_path / "fast.jsonl"), _pairs(tmp_path / "ref.json")


@pytest.mark.parametrize("strategy,settings", [
    ("sup", {}), ("sim", {}), ("sim_least", {}), ("sup_sim", {}),
    ("sup_sim", {"rank_weight": 0.2, "similarity_weight": 0.9, "tau": 0.9}),
    ("sim", {"tau": 0.97}),  # many prompts lose pairs to τ
    ("baseline", {}), ("baseline", {"score": "mean-rating", "seed": 7}),
])
def test_fast_and_per_row_paths_write_the_same_pairs(tmp_path, data, strategy, settings):
    fast, ref = _both(tmp_path, data, strategy, **settings)
    assert len(fast) > 200
    assert fast == ref


def test_same_pairs_when_models_tie(tmp_path, data):
    """Two models with identical scores: equal MB-SUP and MB-SIM 1, so only the tie-breaks decide."""
    lines = (ROOT / "model_aware/benchmark.csv").read_text(encoding="utf-8-sig").splitlines()
    rows = {line.split(",")[0]: line for line in lines[1:]}
    lines = [lines[0]] + [rows["wizardlm-13b"].replace("wizardlm-13b", "llama-2-13b-chat", 1) if name == "llama-2-13b-chat"
                          else line for name, line in rows.items()]
    table = tmp_path / "tie.csv"
    table.write_text("\n".join(lines) + "\n", encoding="utf-8")
    for strategy in ("sup", "sim", "sim_least", "sup_sim"):
        fast, ref = _both(tmp_path, data, strategy, benchmark=str(table))
        assert fast == ref, strategy


TRACKED = ROOT / "benchmarks" / "results" / "binarize_speed.json"  # behind the README's speed table


def test_benchmark_runs_on_a_tiny_size(tmp_path):
    """No --output: a partial run writes beside the tracked results, never over them."""
    tracked = TRACKED.read_bytes()
    cmd = [sys.executable, "-m", "benchmarks.binarize_speed", "--rows", "40", "--response-words", "5",
           "--scales", "1", "--modes", "cold", "warm", "--constructors", "sup", "--repeats", "1",
           "--work-dir", str(tmp_path / "bench")]
    try:
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    finally:
        overwritten = TRACKED.read_bytes() != tracked
        if overwritten:  # put the README's numbers back before failing
            TRACKED.write_bytes(tracked)
    assert not overwritten, "a partial run overwrote benchmarks/results/binarize_speed.json"
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = tmp_path / "bench" / "binarize_speed.partial.json"
    assert f"wrote {out}" in done.stdout
    result = json.loads(out.read_text())
    for mode in ("cold", "warm"):
        runs = result["sizes"]["1"]["modes"][mode]
        for run in (runs["fast"]["sup"], runs["reference"]["sup"], runs["floor"]):
            assert run["rows_read"] == 40 and run["seconds"] > 0 and run["peak_rss_mb"] > 0
        assert runs["reference"]["sup"]["same_pairs_as_fast"] is True
        # the floor writes as many bytes as the largest constructor output
        assert runs["floor"]["output_bytes"] == runs["fast"]["sup"]["output_bytes"] > 0
    assert result["sizes"]["1"]["modes"]["warm"]["select"]["sup"]["stage_seconds"]["select"] >= 0
    assert {(r["mode"], r["constructor"]) for r in result["summary"]["rows"]} == {("cold", "sup"), ("warm", "sup")}
    assert "sup: wrote" not in done.stdout and "speedup" in done.stdout  # the table was printed
    assert result["partial"] is True and result["wall_seconds"] >= sum(
        run["seconds"] for mode in ("cold", "warm") for run in (result["sizes"]["1"]["modes"][mode]["fast"]["sup"],
                                                                  result["sizes"]["1"]["modes"][mode]["floor"]))


def test_benchmark_measures_the_scripts_batch_size():
    from benchmarks import binarize_speed

    assert binarize_speed.BATCH_SIZE == BinarizeConfig.batch_size


@pytest.mark.parametrize("argv, partial", [
    ([], False),
    (["--scales", "1", "--modes", "warm", "--no-reference"], True),  # the README's quick look
    (["--constructors", "sup"], True),
    (["--repeats", "1"], True),
    (["--rows", "300"], True),
])
def test_only_the_whole_benchmark_writes_the_tracked_results(argv, partial):
    from benchmarks import binarize_speed

    args = binarize_speed.parse_args(argv)
    assert binarize_speed.is_partial(args) is partial
    want = Path(args.work_dir) / "binarize_speed.partial.json" if partial else Path(binarize_speed.OUTPUT)
    assert binarize_speed.output_path(args) == ROOT / want


def test_a_partial_run_refuses_the_tracked_results_as_output():
    from benchmarks import binarize_speed

    args = binarize_speed.parse_args(["--modes", "warm", "--output", "benchmarks/results/binarize_speed.json"])
    with pytest.raises(SystemExit, match="binarize_speed.json: a partial run"):
        binarize_speed.output_path(args)


def test_the_bound_writes_what_json_dumps_writes_and_the_floor_its_bytes(tmp_path):
    """The bound is the least a constructor does: it must really encode (each line is json.dumps of
    its record, escapes included), or its ratio to the floor would say nothing. The floor writes the
    texts it read, in place, up to the size it is given."""
    from benchmarks.binarize_speed import worker_bound, worker_floor

    rows = list(make_rows(60, seed=5, response_words=4, awkward_rate=0.4))
    rows[0]["instruction"] = 'say "hi"\n\tand \\ bye \x01 é'
    rows[1]["completions"][0]["response"] = "line one\nline \"two\"\r\n\x7f"
    path = tmp_path / "uf.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "bound.jsonl"
    result = worker_bound(str(path), str(out))
    expected = ""
    for r in rows:
        if len(r["completions"]) >= 2:
            msgs = [[{"content": r["instruction"], "role": "user"}, {"content": c["response"], "role": "assistant"}]
                    for c in r["completions"][:2]]
            expected += json.dumps({"prompt": r["instruction"], "chosen": msgs[0], "rejected": msgs[1]},
                                   ensure_ascii=False) + "\n"
    assert out.read_text(encoding="utf-8") == expected
    assert result["rows_read"] == 60 and result["rows_written"] == expected.count("\n")
    floor = tmp_path / "floor.bin"
    texts = "".join(r["instruction"] for r in rows) + "".join(c["response"] for r in rows for c in r["completions"])
    worker_floor(str(path), str(floor), 10**6)
    assert floor.read_bytes()[:len(texts.encode())] == texts.encode() and floor.stat().st_size == 10**6


SIZE_FLAGS = {  # every benchmark's sizes, scales and repeats: a whole number >= 1
    "binarize_speed": ["--rows", "--scales", "--response-words", "--repeats", "--reference-repeats", "--num-proc"],
    "long_pool_speed": ["--rows", "--response-words", "--repeat"],
    "analyze_memory": ["--rows", "--scales", "--response-words", "--n-boot"],
    "potential_memory": ["--rows", "--scales", "--response-words"],
    "encode_speed": ["--repeats"],
    "weighted_dpo_speed": ["--batch-sizes", "--repeats", "--layers", "--threads"],
    "json_check_cost": ["--repeats"],
}


@pytest.mark.parametrize("module, flag, value", [(m, f, v) for m, flags in SIZE_FLAGS.items() for f in flags
                                                 for v in ("0", "-2", "1.5")])
def test_a_size_below_one_is_refused_in_one_line_before_any_run(module, flag, value, tmp_path):
    """--scales 0 reached make_ultrafeedback.py and ended in a traceback; long_pool_speed checked
    --repeat only after its whole run. Every benchmark refuses such a size at parse time."""
    extra = ["--data", "x.jsonl"] if module == "json_check_cost" else []
    done = subprocess.run([sys.executable, "-m", f"benchmarks.{module}", *extra, flag, value], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2, done.stderr[-500:]
    assert "Traceback" not in done.stderr and f"argument {flag}" in done.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("module", ["analyze_memory", "potential_memory", "encode_speed", "weighted_dpo_speed"])
def test_a_benchmark_writes_the_readme_results_only_when_told_to(module):
    """Their files under benchmarks/results/ are the README's numbers: without --output a run writes
    under out/ (a smoke run at other settings replaced them before)."""
    done = subprocess.run([sys.executable, "-m", f"benchmarks.{module}", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    text = " ".join(done.stdout.split())
    default = text.split("--output OUTPUT")[-1].split("default:")[1].split(";")[0].strip()
    assert default.startswith(("out/", "WORK_DIR/")) and f"benchmarks/results/{module}.json" in text
