"""Pools keyed by a question id (issue 24 §2): prompts in a file of their own, answers and judgments
joined to them by id, as Arena-Hard, MT-bench and FastChat's llm_judge keep them. The fixture
tests/data/arena_hard is made up in Arena-Hard-Auto v0.1's layout: question.jsonl, one answer file
per model (choices[0].turns[0].content), one judgment file per model (games[0].score, `A>>B` …)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from zebra.pools import PoolError, PoolOptions, is_long, load_pool, verdict_value

ROOT = Path(__file__).resolve().parent.parent
AH = ROOT / "tests" / "data" / "arena_hard"
JUDGMENTS = AH / "model_judgment" / "gpt-4-1106-preview"
ARENA = dict(prompts=str(AH / "question.jsonl"), prompt_field="turns.0.content", model_field="model_id",
             response_field="choices.0.turns.0.content", source_field="cluster", model_names=str(AH / "model_names.csv"),
             judgments=str(JUDGMENTS), judgment_model_field="model", judgment_value_field="games.0.score")
FLAGS = ["--prompts", str(AH / "question.jsonl"), "--prompt-field", "turns.0.content", "--model-field", "model_id",
         "--response-field", "choices.0.turns.0.content", "--source-field", "cluster",
         "--model-names", str(AH / "model_names.csv"), "--judgments", str(JUDGMENTS), "--judgment-model-field", "model",
         "--judgment-value-field", "games.0.score", "--skip-unmatched-judgments"]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_arena_hard_pool_joins_by_id_with_counted_skips():
    pool = load_pool(AH / "model_answer", PoolOptions(**ARENA, skip_unmatched_judgments=True))
    r = pool.report
    # 6 models x 5 answered questions + vicuna's answer to a question the file lacks; question 6: no answers
    assert (r["rows"], r["responses_without_prompt"], r["prompts_without_responses"]) == (31, 1, 1)
    assert (r["prompts"], r["responses"]) == (5, 30)
    # 5 judged models x 5 + one judgment of a question the pool lacks (skipped); alpaca's 5th: no verdict
    assert (r["judgment_rows"], r["unmatched_judgments_skipped"], r["judge_failures"]) == (26, 1, 1)
    assert r["labelled_responses"] == 24 and r["unmapped_model_names"] == {}
    first = pool.dataset[0]
    questions = [json.loads(line) for line in (AH / "question.jsonl").read_text(encoding="utf-8").splitlines()]
    assert first["instruction"] == questions[0]["turns"][0]["content"] and first["source"] == "coding"
    by_model = {c["model"]: c["overall_score"] for c in first["completions"]}
    # game 1 has the baseline as A: B>>A = the judged model much better = 2
    assert by_model == {"gpt-3.5-turbo": 2.0, "llama-2-70b-chat": 1.75, "vicuna-33b": 1.5, "llama-2-7b-chat": 1.25,
                        "alpaca-7b": 1.0, "gpt-4": None}
    assert next(c["response"] for c in first["completions"] if c["model"] == "gpt-4").startswith("[gpt-4-0314] answer 1")


def test_a_judgment_of_a_response_the_pool_lacks_is_an_error_without_the_flag():
    with pytest.raises(PoolError) as err:
        load_pool(AH / "model_answer", PoolOptions(**ARENA))
    message = str(err.value)
    assert message.startswith(f"{JUDGMENTS / 'Llama-2-7b-chat-hf.jsonl'}: row 6 judges model 'llama-2-7b-chat' on prompt "
                              f"id '{'f' * 32}', which --prompts does not hold")
    assert "--skip-unmatched-judgments" in message and "\n" not in message


def test_flat_answers_integer_ids_and_score_judgments(tmp_path):
    """MT-bench's integer ids; a flat answers file; a CSV of scores whose ids are text ('81' = 81)."""
    prompts = write_jsonl(tmp_path / "q.jsonl", [{"question_id": 81, "prompt": "Write a poem."},
                                                 {"question_id": 82, "prompt": "Explain rain."},
                                                 {"question_id": 81, "prompt": "Write a poem."}])  # an exact copy
    answers = write_jsonl(tmp_path / "a.jsonl", [
        {"question_id": q, "model": m, "response": f"{m} on {q}"} for q in (81, 82, 83) for m in ("gpt-4", "alpaca-7b")])
    scores = tmp_path / "s.csv"
    scores.write_text("question_id,model,score\n81,gpt-4,9\n81,alpaca-7b,4\n82,alpaca-7b,\n", encoding="utf-8")
    opts = PoolOptions(prompts=str(prompts), model_field="model", response_field="response", judgments=str(scores),
                       judgment_kind="score", judgment_model_field="model", judgment_value_field="score")
    assert is_long(answers, opts)
    pool = load_pool(answers, opts)
    assert [row["instruction"] for row in pool.dataset] == ["Write a poem.", "Explain rain."]
    assert [{c["model"]: c["overall_score"] for c in row["completions"]} for row in pool.dataset] == [
        {"gpt-4": 9.0, "alpaca-7b": 4.0}, {"gpt-4": None, "alpaca-7b": None}]
    r = pool.report
    assert (r["prompt_duplicate_copies"], r["responses_without_prompt"], r["prompts_without_responses"]) == (1, 2, 0)
    assert r["judge_failures"] == 1 and "unmatched_judgments_skipped" not in r  # only counted when asked to skip


def test_a_pool_json_carries_the_join(tmp_path):
    folder = tmp_path / "pool"
    folder.mkdir()
    write_jsonl(folder / "q.jsonl", [{"id": "a1", "turns": [{"content": "Hi?"}, {"content": "And then?"}]}])
    write_jsonl(folder / "answers.jsonl", [{"id": "a1", "model": m, "out": f"{m} says hi"} for m in ("gpt-4", "bard")])
    (folder / "pool.json").write_text(json.dumps({"responses": "answers.jsonl", "prompts": "q.jsonl", "prompt_id_field": "id",
                                                  "prompt_field": "turns.0.content", "model_field": "model",
                                                  "response_field": "out"}), encoding="utf-8")
    pool = load_pool(folder)
    assert pool.dataset[0]["instruction"] == "Hi?"  # the first turn
    assert [c["model"] for c in pool.dataset[0]["completions"]] == ["gpt-4", "bard"]


@pytest.mark.parametrize("text, value", [("A>>B", 1.0), ("A>B", 1.25), ("A=B", 1.5), ("B>A", 1.75), ("B>>A", 2.0),
                                         ("[[B>>A]]", 2.0), ("A<B", 1.75), ("B<<A", 1.0), ("B=A", 1.5),
                                         ("A>A", None), ("C>B", None), ("1.5", None), ("", None)])
def test_verdict_values(text, value):
    assert verdict_value(text) == value


@pytest.mark.parametrize("case, message", [
    ("id_two_texts", "q.jsonl: rows [1, 2]: question_id 'x' has two different prompts"),
    ("text_two_ids", "q.jsonl: rows [1, 2]: question_ids 'x' and 'y' have one prompt text ('p')"),
    ("turns_without_path", "no field 'prompt' (set --prompt-field); its fields are ['question_id', 'turns']: MT-bench and "
                           "Arena-Hard keep the prompt as --prompt-field turns.0.content"),
    ("misspelt_path", "a.jsonl: the field path 'choices.0.turn.0.content' (--response-field) finds a value in no row"),
    ("bad_id", "a.jsonl: row 1: question_id must be a string or an integer id, got '1.5'"),
    ("no_id_matches", "no response's prompt id is in --prompts"),
])
def test_id_pool_errors_are_one_line(tmp_path, case, message):
    prompts = [{"question_id": "x", "prompt": "p"}, {"question_id": "y", "prompt": "q"}]
    answers = [{"question_id": "x", "model": m, "choices": [{"turns": [{"content": f"{m} answer"}]}]} for m in ("a", "b")]
    opts = dict(model_field="model", response_field="choices.0.turns.0.content")
    if case == "id_two_texts":
        prompts[1]["question_id"] = "x"
    elif case == "text_two_ids":
        prompts[1]["prompt"] = "p"
    elif case == "turns_without_path":
        prompts = [{"question_id": "x", "turns": [{"content": "p"}]}]
    elif case == "misspelt_path":
        opts["response_field"] = "choices.0.turn.0.content"
    elif case == "bad_id":
        answers[0]["question_id"] = 1.5
    elif case == "no_id_matches":
        answers = [dict(a, question_id="z") for a in answers]
    q = write_jsonl(tmp_path / "q.jsonl", prompts)
    with pytest.raises(PoolError) as err:
        load_pool(write_jsonl(tmp_path / "a.jsonl", answers), PoolOptions(prompts=str(q), **opts))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_an_unmapped_name_that_collides_with_a_mapped_one_is_named_a_collision(tmp_path):
    """Arena-Hard's folder holds the baseline gpt-4-0314 (mapped to gpt-4) and another `gpt-4` file."""
    folder = tmp_path / "answers"
    folder.mkdir()
    for name in ("gpt-4-0314", "gpt-4"):
        write_jsonl(folder / f"{name}.jsonl", [{"instruction": "p", "generator": name, "output": f"{name} says"}])
    names = tmp_path / "names.csv"
    names.write_text("pool,table\ngpt-4-0314,gpt-4\n", encoding="utf-8")
    with pytest.raises(PoolError) as err:
        load_pool(folder, PoolOptions(model_names=str(names)))
    message = str(err.value)
    assert "a collision of model names" in message and "answers one prompt twice" not in message
    assert "'gpt-4' (not in --model-names, kept as spelled)" in message
    assert "'gpt-4-0314' → 'gpt-4' by --model-names" in message and "\n" not in message


def test_a_file_of_neither_layout_names_the_flags_that_would_read_it():
    """An Arena-Hard answer folder without flags: the error says which flags read it (it named
    SPEC §3, a document the repository does not hold)."""
    done = subprocess.run([sys.executable, "binarize_score.py", "--data", str(AH / "model_answer"), "--output",
                           "/nonexistent/o.json"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    line = done.stderr.strip().splitlines()[-1]
    assert done.returncode != 0 and line.startswith(f"error: {AH / 'model_answer'}: no 'instruction' field")
    for flag in ("--format long", "--instruction-field", "--model-field", "--response-field", "--prompts FILE",
                 "--prompt-id-field", "'model_id'", "'choices'"):
        assert flag in line, flag
    assert "SPEC" not in line


def test_the_agreement_study_runs_on_a_three_file_pool_through_flags_alone(tmp_path):
    out = tmp_path / "agreement"
    done = subprocess.run([sys.executable, "analyze.py", "agreement", "--data", str(AH / "model_answer"), *FLAGS,
                           "--judged-only", "--n-boot", "50", "--tokenizer", "none", "--output-dir", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    study = json.loads((out / "agreement_study.json").read_text(encoding="utf-8"))
    assert study["settings"]["judge"] == "gpt-4-1106-preview" and study["settings"]["data"] == str(AH / "model_answer")
    assert study["rows"]["K=all SUP"]["decided"] == 5  # every prompt's SUP pair: two judged responses
    meta = json.loads((out / "binarized" / "baseline.json.meta.json").read_text(encoding="utf-8"))
    assert meta["settings"]["pool"]["prompts"] == str(AH / "question.jsonl")
    assert meta["pool"]["unmatched_judgments_skipped"] == 1 and meta["pool"]["responses_without_prompt"] == 1
    assert meta["counts"]["rows_read"] == 5
    sup = json.loads((out / "binarized" / "sup.json").read_text(encoding="utf-8"))
    questions = {json.loads(line)["turns"][0]["content"] for line in (AH / "question.jsonl").read_text().splitlines()}
    assert len(sup) == 5 and {r["prompt"] for r in sup} <= questions  # the texts, not the ids


def test_the_prompts_file_is_part_of_the_default_output_name():
    """Two prompts files give two sets of pairs: their default outputs must not be one file."""
    from zebra.pipeline import BinarizeConfig, default_output

    names = {default_output("out/sup.json", BinarizeConfig("sup", "out/sup.json", data=str(AH / "model_answer"),
                                                          pool=PoolOptions(prompts=q))) for q in ("a/q1.jsonl", "a/q2.jsonl")}
    assert len(names) == 2 and all("prompts-q" in n for n in names)


def test_a_folder_as_prompts_or_model_names_file_is_named_as_a_folder(tmp_path):
    """A folder exists: "no such file" sent the user looking for a typo (seen before the fix)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    arena = root / "tests" / "data" / "arena_hard"
    for flag in ("--prompts", "--model-names"):
        args = ["--data", str(arena / "model_answer"), "--prompts", str(arena / "question.jsonl"),
                "--prompt-field", "turns.0.content", "--model-field", "model_id",
                "--response-field", "choices.0.turns.0.content", flag, str(arena / "model_answer")]
        proc = subprocess.run([sys.executable, "binarize_score.py", *args, "--output", str(tmp_path / "o.json")],
                              cwd=root, capture_output=True, text=True, timeout=120, env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
        assert proc.returncode == 1 and f"{arena / 'model_answer'}: is a folder, not a {flag} file" in proc.stderr, proc.stderr
        assert not (tmp_path / "o.json").exists()
