"""Made-up UltraFeedback rows in the exact schema (SPEC §3), deterministic from a seed.

Used for the shipped sample (`data/ultrafeedback_sample.jsonl`, a few hundred short rows) and
for full-size speed runs (63,967 rows with responses of realistic length). The text is
nonsense, but it is shaped so that the analyses have something to find: models of one family
share style words, and GPT-4-like ratings rise with the model's MB-SUP plus noise.

The first rows of every file are the awkward cases the loader must handle; after them, each
row has a small chance (`awkward_rate`) of being made awkward the same ways.
"""

from __future__ import annotations

import numpy as np

# The 17 UltraFeedback models with a rough quality in [0, 1] (close to the paper's MB-SUP),
# and a family that decides which style words their responses share.
MODELS = {
    "gpt-4": (0.99, "gpt"), "gpt-3.5-turbo": (0.77, "gpt"), "bard": (0.86, "bard"),
    "llama-2-7b-chat": (0.41, "llama"), "llama-2-13b-chat": (0.45, "llama"), "llama-2-70b-chat": (0.58, "llama"),
    "ultralm-13b": (0.40, "ultra"), "ultralm-65b": (0.55, "ultra"),
    "wizardlm-7b": (0.34, "wizard"), "wizardlm-13b": (0.45, "wizard"), "wizardlm-70b": (0.58, "wizard"),
    "vicuna-33b": (0.57, "vicuna"), "alpaca-7b": (0.16, "alpaca"), "falcon-40b-instruct": (0.47, "falcon"),
    "mpt-30b-chat": (0.38, "mpt"), "starchat": (0.05, "star"), "pythia-12b": (0.07, "pythia"),
}
UNKNOWN_MODEL = "mistral-7b-instruct"  # not in the behaviour table: must be skipped and named
SOURCES = ("evol_instruct", "false_qa", "flan_v2_niv2", "sharegpt", "ultrachat", "truthful_qa")
ASPECTS = ("helpfulness", "honesty", "instruction_following", "truthfulness")

_TOPICS = ("planets rivers algebra poetry recipes history markets viruses bridges music chess language "
           "oceans batteries forests software elections vaccines deserts galaxies").split()
_FILLER = ("the a of to and in is that for it as with on by this be are from at or an which can will "
           "also more such these their some may when into other than then only about because").split()
_STYLE = {fam: [f"{fam}{i}" for i in range(12)] for fam in {f for _, f in MODELS.values()}}
_STYLE["unknown"] = [f"mis{i}" for i in range(12)]


def _text(rng: np.random.Generator, words: int, topic: list[str], style: list[str]) -> str:
    # A plain list indexed from Python ints: joining numpy str_ scalars (the first version) made
    # full-size generation take minutes; the draws, and so the bytes written, are unchanged.
    pool = _FILLER * 3 + topic * 4 + style * 2
    return " ".join([pool[j] for j in rng.integers(0, len(pool), size=max(words, 1)).tolist()]).capitalize() + "."


def _rating(quality: float, rng: np.random.Generator) -> int:
    # Python's round() rounds half to even like np.rint; scalar numpy calls cost ~1 µs each.
    return min(max(round(1 + 4 * quality + rng.normal(0, 0.9)), 1), 5)


def _completion(model: str, prompt: str, topic: list[str], rng: np.random.Generator, words: int) -> dict:
    quality, family = MODELS.get(model, (0.5, "unknown"))
    ratings = [_rating(quality, rng) for _ in ASPECTS]
    fine = sum(ratings) / len(ratings)  # exact for four small integers, as np.mean was
    return {
        "annotations": {
            "helpfulness": {"Rating": str(ratings[0]), "Rationale": "Made-up rationale.",
                            "Rationale For Rating": "Made-up.", "Type": ["1", "2"]},
            "honesty": {"Rating": str(ratings[1]), "Rationale": "Made-up rationale."},
            "instruction_following": {"Rating": str(ratings[2]), "Rationale": "Made-up rationale."},
            "truthfulness": {"Rating": str(ratings[3]), "Rationale": "Made-up rationale.",
                             "Rationale For Rating": "Made-up.", "Type": ["0"]},
        },
        "critique": "Made-up critique.",
        "custom_system_prompt": "You are a helpful assistant.",
        "fine-grained_score": fine,
        "model": model,
        "overall_score": float(min(max(round(2 * fine + rng.normal(0, 1.0)), 1), 10)),
        "principle": "helpfulness",
        "response": _text(rng, int(words * rng.uniform(0.5, 1.5)), topic, _STYLE[family]),
    }


def _row(i: int, rng: np.random.Generator, words: int, awkward: str | None) -> dict:
    topic = list(rng.choice(_TOPICS, size=3, replace=False))
    prompt = f"[{i}] Explain {topic[0]} and {topic[1]} in terms of {topic[2]}, with one example."
    names = list(MODELS)
    models = [names[j] for j in rng.choice(len(names), size=4, replace=False)]
    if awkward == "ultralm-65b" and "ultralm-65b" not in models:
        models[0] = "ultralm-65b"
    if awkward == "unknown-model":
        models[1] = UNKNOWN_MODEL
    n = {"two-completions": 2, "three-completions": 3}.get(awkward, 4)
    completions = [_completion(m, prompt, topic, rng, words) for m in models[:n]]
    if awkward == "empty-response":
        completions[2]["response"] = "   "
    if awkward == "duplicate-response":
        completions[3]["response"] = completions[1]["response"]
    if awkward == "na-ratings":
        for aspect in ("honesty", "truthfulness"):
            completions[0]["annotations"][aspect]["Rating"] = "N/A"
    if awkward == "shuffled-order":
        completions = completions[::-1]  # completions no longer follow `models`
    source = "truthful_qa" if awkward == "truthful-qa" else str(rng.choice(SOURCES[:-1]))
    return {
        "source": source,
        "instruction": prompt,
        "models": models,
        "completions": completions,
        "correct_answers": ["made-up correct answer"] if source == "truthful_qa" else [],
        "incorrect_answers": ["made-up wrong answer"] if source == "truthful_qa" else [],
    }


AWKWARD = ("ultralm-65b", "two-completions", "three-completions", "shuffled-order", "empty-response",
           "duplicate-response", "unknown-model", "na-ratings", "truthful-qa")


def make_rows(n: int, seed: int = 0, response_words: int = 40, awkward_rate: float = 0.05):
    """Yield `n` rows; the first len(AWKWARD) are one of each awkward case, in that order."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        if i < len(AWKWARD):
            awkward = AWKWARD[i]
        elif rng.random() < awkward_rate:
            awkward = str(rng.choice(AWKWARD))
        else:
            awkward = None
        yield _row(i, rng, response_words, awkward)
