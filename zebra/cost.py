"""Table 3: what labelling preference data per instance costs, against ZEBRA's benchmark runs.

Instance-wise labelling pays for every instance:

    per_instance = tokens_in · price_in / 10⁶ + tokens_out · price_out / 10⁶      (USD)
    total        = instances · per_instance

ZEBRA pays per (model, benchmark) evaluation, once, whatever the number of instances:

    total = models · benchmarks · cost_per_run          (0 when public scores are reused)

The paper prints unit costs without token counts. The default token split below is one that
reproduces its UltraFeedback unit cost at GPT-4's 2023 list price; it is an assumption, stated
as such, and every number is a flag.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from zebra.errors import ZebraError

# Table 3 as printed: (category, dataset, pairs/units, unit cost USD, total cost USD).
PAPER_TABLE3 = (
    ("Instance-wise RLAIF", "UltraFeedback (Cui et al., 2023)", 64_000, 0.252, 16_128),
    ("Instance-wise RLAIF", "Safer-Instruct (Shi et al., 2024)", 10_254, 0.063, 646),
    ("Instance-wise RLAIF", "OpenHermesPreferences (Huang et al., 2024)", 989_000, 0.126, 124_614),
    ("Model behavior-wise", "ZEBRA (ours)", 64_000, 0.0, 0),
)

# UltraFeedback asks GPT-4 once per aspect (4 calls), each showing the instruction and all
# completions, and gets one rating + rationale per completion back.
ASPECT_CALLS = 4
TEMPLATE_TOKENS = 500  # the aspect rubric and format instructions, per call (an estimate)
RATIONALE_TOKENS = 75  # one "Rating: n\nRationale: ..." per completion (an estimate)
CHARS_PER_TOKEN = 4.0  # the usual rule of thumb for English with GPT-4's tokenizer


@dataclass(frozen=True)
class Price:
    """USD per million tokens; GPT-4 (8k) list price when UltraFeedback was labelled (2023)."""

    input_per_mtok: float = 30.0
    output_per_mtok: float = 60.0


class CostError(ZebraError):
    """A cost that is not a finite number; the message names the flags that produce it."""


def _finite(value: float, flags: str) -> float:
    """Refuse a cost that overflowed: `inf` in table3_cost.csv reads as a number (issue 19)."""
    if not math.isfinite(value):
        raise CostError(f"Table 3: {flags} give a cost of {value}, not a finite number; use realistic counts and prices")
    return value


def per_instance_cost(tokens_in: float, tokens_out: float, price: Price = Price()) -> float:
    return _finite(_finite(tokens_in * price.input_per_mtok / 1e6, "--tokens-in × --price-in")
                   + _finite(tokens_out * price.output_per_mtok / 1e6, "--tokens-out × --price-out"),
                   "--tokens-in, --tokens-out, --price-in and --price-out")


def estimate_tokens(instruction_chars: np.ndarray, response_chars: np.ndarray, completions: np.ndarray) -> tuple[float, float]:
    """Mean tokens in and out per instance for UltraFeedback-style labelling, from text lengths.

    Each of the ASPECT_CALLS calls reads the rubric, the instruction and every completion, and
    writes a rating and rationale per completion.
    """
    text_tokens = (np.asarray(instruction_chars, float) + np.asarray(response_chars, float)) / CHARS_PER_TOKEN
    tokens_in = ASPECT_CALLS * (TEMPLATE_TOKENS + text_tokens)
    tokens_out = ASPECT_CALLS * RATIONALE_TOKENS * np.asarray(completions, float)
    return float(tokens_in.mean()), float(tokens_out.mean())


def cost_table(
    instances: int, tokens_in: float, tokens_out: float, price: Price, models: int, benchmarks: int,
    cost_per_run: float = 0.0, measured: tuple[float, float] | None = None,
) -> pd.DataFrame:
    """The paper's rows, then this calculation's rows for `instances` instances."""
    rows = [
        {"source": "paper", "category": c, "method": m, "units": n, "unit_cost_usd": u, "total_cost_usd": float(t),
         "recomputed_total_usd": round(n * u, 2)}
        for c, m, n, u, t in PAPER_TABLE3
    ]
    unit = per_instance_cost(tokens_in, tokens_out, price)
    rows.append({"source": "calculation", "category": "Instance-wise RLAIF",
                 "method": f"GPT-4 labels, {tokens_in:,.0f} in + {tokens_out:,.0f} out tokens/instance",
                 "units": instances, "unit_cost_usd": unit,
                 "total_cost_usd": _finite(instances * unit, "--instances × the unit cost")})
    if measured is not None:
        unit_m = per_instance_cost(*measured, price)
        rows.append({"source": "calculation", "category": "Instance-wise RLAIF",
                     "method": f"GPT-4 labels, {measured[0]:,.0f} in + {measured[1]:,.0f} out tokens/instance (from the data's lengths)",
                     "units": instances, "unit_cost_usd": unit_m,
                     "total_cost_usd": _finite(instances * unit_m, "--instances × the measured unit cost")})
    runs = models * benchmarks
    zebra_total = _finite(runs * cost_per_run, "--run-cost × models × benchmarks")
    rows.append({"source": "calculation", "category": "Model behavior-wise",
                 "method": f"ZEBRA, {models} models × {benchmarks} benchmarks = {runs} runs at ${cost_per_run:g}/run",
                 "units": instances, "unit_cost_usd": zebra_total / instances if instances else 0.0,
                 "total_cost_usd": zebra_total})
    return pd.DataFrame(rows)


def text_lengths(ds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of an UltraFeedback-schema dataset: instruction characters, characters of all its
    responses, and its number of completions (read from Arrow, no Python loop over rows)."""
    import pyarrow.compute as pc

    tbl = ds.with_format("arrow")[:]
    comp = tbl.column("completions").combine_chunks()
    counts = pc.fill_null(pc.list_value_length(comp), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    resp = pc.fill_null(pc.utf8_length(pc.list_flatten(comp).field("response")), 0).to_numpy(zero_copy_only=False)
    row_of = np.repeat(np.arange(len(counts)), counts)
    per_row = np.bincount(row_of, weights=resp.astype(float), minlength=len(counts))
    instr = pc.fill_null(pc.utf8_length(tbl.column("instruction")), 0).to_numpy(zero_copy_only=False)
    return instr.astype(float), per_row, counts


def markdown_table(df: pd.DataFrame) -> str:
    """Table 3 as a Markdown table (no tabulate dependency)."""
    cols = ["category", "method", "units", "unit_cost_usd", "total_cost_usd"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        lines.append(f"| {r['category']} | {r['method']} | {r['units']:,} | {r['unit_cost_usd']:.4g} | {r['total_cost_usd']:,.2f} |")
    return "\n".join(lines) + "\n"
