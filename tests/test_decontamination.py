"""zebra/decontamination.py and decontaminate.py: test items planted into the shipped pool are found
(exact, case-changed, reworded by one word) and stock phrases are not; the vectorised score equals a
literal reading of the rule; --drop-contaminated writes a counted copy; bad settings are one line."""

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from zebra import decontamination as dc
from zebra.benchmarks import Item, load_items
from zebra.evaluation import render_prompt

ROOT = Path(__file__).resolve().parents[1]
SUBSETS = ROOT / "data" / "eval"
POOL = ROOT / "data" / "alpaca_eval"
ENV = {"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}


# ----------------------------------------------------------------------------- the rule


def naive_score(fields: list[list[str]], text: list[str], n: int) -> float:
    """The rule read literally, one item and one text (both already normalised) at a time: per
    field, the share of its tokens inside an n-gram that also occurs in the text; the item's score
    is the mean over fields."""
    grams = {tuple(text[i:i + n]) for i in range(len(text) - n + 1)}
    shares = []
    for toks in fields:
        covered = set()
        for i in range(len(toks) - n + 1):
            if tuple(toks[i:i + n]) in grams:
                covered.update(range(i, i + n))
        shares.append(len(covered) / len(toks) if toks else 0.0)
    return sum(shares) / len(shares)


def test_normalisation_ignores_case_punctuation_spacing_and_width():
    assert dc.normalised_tokens("  The ANSWER,is:(B)…  ＦＵＬＬ-width ") == ["the", "answer", "is", "b", "full", "width"]
    assert dc.normalised_tokens("Café naïve—x") == ["café", "naïve", "x"]
    assert dc.normalised_tokens("") == []


@pytest.mark.parametrize("n", [2, 3, 5])
def test_vectorised_scores_equal_the_literal_rule_on_random_texts(n):
    """Small vocabularies make grams repeat, overlap and recur in several items and texts: the
    cases where a running union of covered tokens could go wrong."""
    rng = random.Random(n)
    words = ["a", "b", "c", "d"]
    items = {"mmlu_pro": [], "ifeval": []}
    for k in range(40):
        question = " ".join(rng.choice(words) for _ in range(rng.randint(1, 14)))
        options = tuple(" ".join(rng.choice(words) for _ in range(rng.randint(1, 3))) for _ in range(rng.randint(0, 4)))
        items["mmlu_pro" if options else "ifeval"].append(Item(str(k), question, options))
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(0, 40))) for _ in range(60)] + [None]
    index = dc.build_index(items, n)
    flat = [it for part in items.values() for it in part]
    fields = [[dc.normalised_tokens(f) for f in dc.item_fields(it)] for it in flat]
    scores = {(t, i): naive_score(fields[i], dc.normalised_tokens(text or ""), n)
              for t, text in enumerate(texts) for i in range(len(flat))}
    for threshold in (0.2, 0.5, 1.0):
        got = dc.find_matches(index, texts, threshold, batch_size=7)  # batches: offsets must carry over
        found = {(int(t), int(i)): c for t, i, c in zip(got.text, got.item, got.coverage)}
        expected = {k: v for k, v in scores.items() if v >= threshold - 1e-12}
        assert found.keys() == expected.keys()
        assert all(found[k] == pytest.approx(expected[k]) for k in expected)
    matched = sum(v >= 0.2 for v in scores.values())
    assert 5 < matched < len(scores) - 5  # the draw gives both kinds of pair to compare


def test_a_hash_collision_is_never_a_match(monkeypatch):
    items = {"ifeval": [Item("1", "alpha beta gamma delta epsilon zeta eta theta iota")]}
    texts = ["alpha beta gamma delta epsilon zeta eta theta iota", "iota eta zeta theta beta alpha gamma delta epsilon"]
    honest = dc.find_matches(dc.build_index(items), texts)
    # a multiplier of 0 makes every n-gram's hash its last token: the second text then collides
    monkeypatch.setattr(dc, "_MULTIPLIER", np.uint64(0))
    colliding = dc.find_matches(dc.build_index(items), texts)
    assert honest.text.tolist() == colliding.text.tolist() == [0]


# ----------------------------------------------------------------------------- planted items


def _planted_pool(tmp_path: Path) -> tuple[Path, dict]:
    """The shipped pool plus prompts that carry real test items of data/eval, and two controls."""
    pool = tmp_path / "pool"
    shutil.copytree(POOL, pool)
    pro = load_items("mmlu_pro", SUBSETS)[3]
    arc = load_items("arc_challenge", SUBSETS)[5]
    swag = load_items("hellaswag", SUBSETS)[7]
    ifeval = load_items("ifeval", SUBSETS)[2]
    words = swag.question.split()
    middle = len(words) // 2
    reworded = " ".join(words[:middle] + ["zzyzx"] + words[middle + 1:])
    planted = {
        "exact": (f"Answer this: {render_prompt(pro)}", ("mmlu_pro", pro.id)),
        "case": (render_prompt(arc).upper().replace("(", "[").replace(")", "]"), ("arc_challenge", arc.id)),
        "one_word": (f"{reworded} Which ending? " + " / ".join(swag.options), ("hellaswag", swag.id)),
        "ifeval": (ifeval.question, ("ifeval", ifeval.id)),
        # controls: a stock phrase of MMLU questions, and a question's first few words
        "stock": ("Which of the following is not an example of good marketing? Explain.", None),
        "fragment": (" ".join(pro.question.split()[:5]) + " is a phrase I like.", None),
    }
    lines = []
    for source, (prompt, _) in planted.items():
        for model in ("gpt4", "alpaca-7b"):
            lines.append(json.dumps({"instruction": prompt, "dataset": f"planted_{source}", "generator": model,
                                     "output": f"A reply of {model}."}))
    with open(pool / "model_outputs.jsonl", "a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return pool, {k: v[1] for k, v in planted.items()}


def _run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, str(ROOT / "decontaminate.py"), *map(str, args)], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("planted")
    pool, expected = _planted_pool(tmp)
    proc = _run("--data", pool, "--eval-dir", SUBSETS, "--output-dir", tmp / "report")
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp / "report" / "decontamination.json").read_text())
    return tmp, pool, expected, report, proc.stdout


def test_planted_items_are_found_and_controls_are_not(planted):
    _, _, expected, report, stdout = planted
    assert report["prompts"] == 403 + 6 and report["prompts_contaminated"] == 4
    for source, found in expected.items():
        for name, bench in report["benchmarks"].items():
            by = bench["by_source"].get(f"planted_{source}")
            if found and name == found[0]:
                assert by == {"prompts": 1, "prompts_contaminated": 1, "item_ids": [found[1]]}, (source, bench)
            else:
                assert by is None, (source, name, by)
    # the real AlpacaEval prompts hold none of the 6 × 24 shipped items
    assert all(src.startswith("planted_") for b in report["benchmarks"].values() for src in b["by_source"])
    assert report["benchmarks"]["mmlu_pro"]["items"] == 24 and report["settings"]["ngram"] == 8
    assert "4 of 409 prompts contain a test item" in stdout


def test_matches_csv_names_prompt_source_benchmark_item_and_coverage(planted):
    tmp, _, expected, _, _ = planted
    rows = (tmp / "report" / "matches.csv").read_text().splitlines()
    assert rows[0] == "prompt_id,source,field,benchmark,item_id,coverage"
    got = {(r.split(",")[1], r.split(",")[3], r.split(",")[4]) for r in rows[1:]}
    assert got == {(f"planted_{s}", *found) for s, found in expected.items() if found}
    coverage = {r.split(",")[1]: float(r.split(",")[5]) for r in rows[1:]}
    assert coverage["planted_ifeval"] == 1.0
    # Figure 7's "(B)" between two options breaks the n-grams across that boundary, so the options
    # field is never fully covered; MMLU-Pro's long options lose little, ARC's one-word options more
    assert 0.9 < coverage["planted_exact"] < 1.0 and 0.5 < coverage["planted_case"] < 1.0
    assert 0.5 < coverage["planted_one_word"] < 1.0  # the changed word's n-grams are gone, the rest remain


def test_drop_contaminated_writes_a_counted_copy_and_leaves_the_input(planted):
    tmp, pool, expected, _, _ = planted
    sup = tmp / "sup.json"
    proc = subprocess.run([sys.executable, str(ROOT / "binarize_score.py"), "--data", str(pool), "--output", str(sup)],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    before = sup.read_bytes()
    source_meta = json.loads(Path(f"{sup}.meta.json").read_text())
    clean = tmp / "clean" / "sup.jsonl"
    proc = _run("--data", sup, "--eval-dir", SUBSETS, "--drop-contaminated", "--output", clean,
                "--output-dir", tmp / "report_sup")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sup.read_bytes() == before
    kept = [json.loads(line) for line in clean.read_text().splitlines()]
    meta = json.loads(Path(f"{clean}.meta.json").read_text())
    records = json.loads(before)
    planted_prompts = {r["prompt_id"] for r in records if r["prompt"].startswith(("Answer this:", "Q: ")) or
                       r["prompt"] == load_items("ifeval", SUBSETS)[2].question or "zzyzx" in r["prompt"]}
    assert len(planted_prompts) == 4
    assert {r["prompt_id"] for r in kept} == {r["prompt_id"] for r in records} - planted_prompts
    c = meta["counts"]
    assert c["rows_skipped"]["contaminated"] == 4 and c["rows_written"] == len(kept) == len(records) - 4
    assert c["rows_read"] == source_meta["counts"]["rows_read"] == c["rows_written"] + sum(c["rows_skipped"].values())
    assert sum(c["chosen_by_model"].values()) == len(kept) == sum(c["kinship_rank_histogram"].values())
    assert meta["decontamination"]["removed"] == 4 and meta["decontamination"]["source_records"] == str(sup)
    assert sorted(meta["decontamination"]["removed_prompt_ids"]) == sorted(planted_prompts)
    assert meta["settings"]["output"] == str(clean) and meta["reliability"]["rated_pairs_kept"] == len(kept)


@pytest.mark.parametrize("args, expected", [
    (["--ngram", "0"], "--ngram must be in [1, 64], not 0"),
    (["--threshold", "0"], "--threshold must be in (0, 1], not 0.0"),
    (["--threshold", "nan"], "--threshold must be a finite number"),
    (["--drop-contaminated"], "--drop-contaminated filters a binarize output"),
    (["--output", "x.json"], "--output is the filtered copy of --drop-contaminated"),
    (["--eval-dir", "tests"], "no mmlu_stem.jsonl/.json/.parquet or mmlu_stem/ folder"),
    (["--output-dir", "data/eval"], "would overwrite the input data/eval"),
    (["--benchmarks", "mmlu"], "--benchmarks: unknown ['mmlu']"),
])
def test_bad_settings_are_one_line_and_write_nothing(args, expected, tmp_path):
    proc = _run(*([] if "--output-dir" in args else ["--output-dir", tmp_path / "r"]), *args)
    assert proc.returncode != 0 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert proc.stderr.startswith("error: ") and expected in proc.stderr
    assert not (tmp_path / "r").exists()


def test_the_filtered_copy_may_not_replace_its_input(tmp_path):
    data = tmp_path / "sup.json"
    data.write_text(json.dumps([{"prompt": "hi", "prompt_id": "1"}]))
    Path(f"{data}.meta.json").write_text("{}")
    for output in (data, Path(f"{data}.meta.json"), SUBSETS / "x.json"):
        proc = _run("--data", data, "--drop-contaminated", "--output", output, "--output-dir", tmp_path / "r")
        assert proc.returncode != 0 and "would overwrite the input" in proc.stderr, proc.stderr
    assert json.loads(data.read_text()) == [{"prompt": "hi", "prompt_id": "1"}]
