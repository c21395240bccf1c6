"""IFEval scoring on real data: Google's 541 GPT-4 responses score as the IFEval paper reports,
and the same in every process (langdetect and Google's letter checker used to draw at random)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from zebra.benchmarks import Item, ifeval_item
from zebra.evaluation import IFEVAL_GPT4_DIR, ifeval_score, join_ifeval_responses, read_jsonl_rows

ROOT = Path(__file__).resolve().parents[1]


def _item(ids: list[str], kwargs: list[dict], prompt: str = "p") -> Item:
    return Item("t", prompt, extra={"instruction_id_list": ids, "kwargs": kwargs})


def test_letter_frequency_counts_the_character_asked_for():
    # Google's checker swaps any `letter` outside a-z for a random letter: key 1122 asks for 4+ '#',
    # key 1129 for 6+ '!'; the same response then passed or failed depending on the draw
    hashtags = _item(["keywords:letter_frequency"], [{"let_relation": "at least", "letter": "#", "let_frequency": 4}])
    assert [ifeval_score("so fun #a #b #c #d", hashtags)["inst_strict"] for _ in range(20)] == [[True]] * 20
    assert [ifeval_score("so fun #a #b #c", hashtags)["inst_strict"] for _ in range(20)] == [[False]] * 20
    bangs = _item(["keywords:letter_frequency"], [{"let_relation": "less than", "letter": "!", "let_frequency": 2}])
    assert ifeval_score("zzz!", bangs)["inst_strict"] == [True]
    assert ifeval_score("zzz!!", bangs)["inst_strict"] == [False]


def test_language_detection_is_the_same_on_every_call():
    # unseeded, langdetect calls this 'en' on some calls and 'es'/'sq' on others
    lower = _item(["change_case:english_lowercase"], [{}])
    results = {ifeval_score("bonjour hello ciao", lower)["prompt_strict"] for _ in range(40)}
    assert len(results) == 1


def test_join_by_exact_text_except_the_shinto_prompt():
    prompts = read_jsonl_rows(IFEVAL_GPT4_DIR / "input_data.jsonl")
    responses = read_jsonl_rows(IFEVAL_GPT4_DIR / "input_response_data_gpt4_20231107_145030.jsonl")
    items = [ifeval_item(row, i) for i, row in enumerate(prompts)]
    pairs = join_ifeval_responses(items, responses, "responses.jsonl")
    assert len(pairs) == len(prompts) == 541
    by_key = {it.id: text for it, text in pairs}
    shinto = next(r["response"] for r in responses if r["prompt"].startswith("What is inside Shinto shrines?"))
    assert by_key["2785"] == shinto
    with pytest.raises(ValueError, match=r"responses.jsonl: no response for ifeval key 1000"):
        join_ifeval_responses(items, responses[1:], "responses.jsonl")
    with pytest.raises(ValueError, match=r"responses.jsonl: 2 responses to the prompt of ifeval key 1000"):
        join_ifeval_responses(items, [responses[0], *responses], "responses.jsonl")


def _score_in_subprocess(hash_seed: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "evaluate.py", "ifeval-responses", str(IFEVAL_GPT4_DIR / "input_response_data_gpt4_20231107_145030.jsonl")]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_google_gpt4_responses_score_as_the_paper_reports_in_every_process():
    """IFEval paper (Zhou et al. 2023, Table 3), GPT-4: prompt-level strict 76.89 % (416/541),
    instruction-level strict 83.57 % (697/834). Two processes, two hash seeds, one answer."""
    procs = [_score_in_subprocess(seed) for seed in ("1", "2")]
    outs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr
        outs.append(json.loads(stdout.splitlines()[-1]))
    assert outs[0] == outs[1]
    s = outs[0]
    assert s["n"] == 541 and s["n_instructions"] == 834
    assert abs(s["prompt_level_strict_acc"] * 541 - 416) <= 1  # within one prompt
    assert abs(s["inst_level_strict_acc"] * 834 - 697) <= 2  # within two instructions
    assert s["prompt_level_strict_acc"] == pytest.approx(0.7689, abs=0.002)
    assert s["inst_level_strict_acc"] == pytest.approx(0.8357, abs=0.0025)
