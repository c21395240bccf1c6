r"""Publish binarize outputs as a Hugging Face dataset folder with a dataset card.

    # make demo's five outputs (out/demo) → one config per strategy, loadable by `datasets`, trained by trl
    python publish.py out/demo --output-dir out/hf

    # with the GPT-4 agreement numbers of the same pool (analyze.py agreement's summary)
    python analyze.py agreement --binarized out/demo --output-dir out/agreement_demo
    python publish.py out/demo --agreement out/agreement_demo/summary_agreement.json --output-dir out/hf

    # and upload it (a machine that reaches the hub; `huggingface-cli login` first)
    python publish.py out/demo --output-dir out/hf --push-to-hub your-name/zebra-alpaca-eval-pairs --private

    # then, anywhere
    python -c "from datasets import load_dataset; print(load_dataset('out/hf', 'sup', split='train')[0])"

Each input (a binarize_*.py output with its .meta.json, or a folder of them) becomes config
`<strategy>` (`<strategy>/train.parquet`, split `train`) in trl's conversational preference format:
`prompt` / `chosen` / `rejected` message lists, plus `chosen_model`, `rejected_model`, `mb_sup_*`,
`mb_sim`, `kinship_rank`, the reliability columns and the pool's instance labels (`score_*`) where
the pool has them. README.md is the dataset card: the hub's YAML (licence from the pool, configs,
size and task categories, language) and how the data was made (zebra/publish.py).
"""

import argparse
import json
import logging
import sys
from pathlib import Path

from zebra import hub
from zebra.errors import ZebraError
from zebra.jsonio import read_json

OUTPUT_DIR = "out/hf"
PRETTY_NAME = "ZEBRA preference pairs"
LANGUAGE = "en"  # AlpacaEval's and UltraFeedback's prompts are English; say so for another pool


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="+", metavar="DATA",
                    help="binarize_*.py outputs (.json/.jsonl/.parquet with a .meta.json beside), or folders of them")
    ap.add_argument("--output-dir", default=OUTPUT_DIR, help="the dataset folder; replaced if publish.py wrote it (default: %(default)s)")
    ap.add_argument("--agreement", default=None, help="analyze.py agreement's summary_agreement.json (or agreement_study.json): "
                    "its numbers go into the card")
    ap.add_argument("--license", default=None, help="hub licence id (default: the pool's: cc-by-nc-4.0 for the shipped "
                    "AlpacaEval pool, mit for openbmb/UltraFeedback; other pools must say)")
    ap.add_argument("--language", default=LANGUAGE, help="ISO 639-1 code of the prompts (default: %(default)s)")
    ap.add_argument("--pretty-name", default=PRETTY_NAME, help="the card's title (default: %(default)s)")
    ap.add_argument("--no-labels", action="store_true", help="do not read the pool again for the instance labels (score_* columns)")
    ap.add_argument("--push-to-hub", default=None, metavar="REPO", help="also upload the folder to this dataset repo "
                    "(needs the network; refused when HF_HUB_OFFLINE is set)")
    ap.add_argument("--private", action="store_true", help="with --push-to-hub: create the repo private")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        run(args)
    except ZebraError as err:
        sys.exit(f"error: {err}")


def run(args: argparse.Namespace) -> None:
    from zebra import publish as pub
    from zebra.settings import check_output_folder

    pub.check_card_flags(args.license, args.language, args.pretty_name, args.push_to_hub)
    if args.push_to_hub and hub.offline():
        raise ZebraError(f"--push-to-hub {args.push_to_hub}: HF_HUB_OFFLINE is set, so nothing can be uploaded; "
                         "unset it on a machine that reaches the hub")
    if args.private and not args.push_to_hub:
        raise ZebraError("--private applies to --push-to-hub; add it or drop --private")
    if args.push_to_hub:
        hub.require_reachable(f"--push-to-hub {args.push_to_hub}")  # before the work, not after it
    sources = [pub.read_source(p) for p in pub.find_outputs(args.data)]
    sources.sort(key=lambda s: list(pub.SCRIPTS).index(s.config))  # sup first: the card's example loads it
    pub.name_configs(sources)
    licence = pub.licence(sources, args.license)
    out = Path(args.output_dir)

    # every file the run reads: the records, their metas, the behaviour table, the pool, the agreement summary
    inputs = [*args.data, *(p for s in sources for p in (s.path, Path(f"{s.path}.meta.json")))]
    for s in sources:
        settings, pool = s.meta["settings"], s.meta["settings"].get("pool") or {}
        inputs += [settings.get("benchmark"), pub.pool_of(s.meta), pool.get("model_names"), pool.get("judgments")]
        inputs += (s.meta.get("pool") or {}).get("files") or []
    if args.agreement:
        inputs.append(args.agreement)
    check_output_folder(out, [p for p in inputs if p])
    pub.check_target(out)

    agreement = None
    if args.agreement:
        agreement = pub.agreement_rows(read_json(args.agreement, "--agreement summary"), args.agreement)

    table = behaviour_table(sources)
    labels_of: dict[str, dict] = {}
    tables, conversion, label_columns = {}, {}, {}
    for s in sources:
        labels = None
        if not args.no_labels:
            key = json.dumps([pub.pool_of(s.meta), s.meta["settings"].get("pool")], sort_keys=True)
            if key not in labels_of:
                try:
                    labels_of[key] = pub.pool_labels(s.meta)
                except ZebraError as err:
                    raise ZebraError(f"{s.path}: its pool cannot be read for the instance labels ({err}); "
                                     "pass --no-labels to publish without them") from None
            labels = labels_of[key]
        rows, counts = pub.dataset_rows(s.records, labels, str(s.path))
        if not rows:
            raise ZebraError(f"{s.path}: no record is a usable preference pair; nothing to publish for {s.config}")
        tables[s.config], conversion[s.config] = rows, counts
        label_columns[s.config] = [c for c in rows[0] if c.startswith(("score_", "rating_"))]
    card = pub.Card(sources, {c: len(r) for c, r in tables.items()}, conversion, label_columns, licence, table,
                    args.pretty_name, args.language, repo=args.push_to_hub, agreement=agreement,
                    agreement_source=args.agreement)
    files = {"README.md": pub.card_text(card).encode("utf-8")}
    if table.get("file"):
        files["behaviour_table.csv"] = table["file"]
    for s in sources:
        files[f"provenance/{s.config}.meta.json"] = Path(f"{s.path}.meta.json")
    manifest = {"command": " ".join(["python", "publish.py", *sys.argv[1:]]),
                "inputs": {s.config: {"path": str(s.path), "sha256": s.sha256} for s in sources},
                "behaviour_table": {k: v for k, v in table.items() if k in ("path", "sha256")},
                "licence": licence[0], "rows": card.rows, "conversion": conversion, "labels": label_columns}
    files[pub.MARKER] = (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    pub.write_dataset(out, files, tables)
    shown = ", ".join(f"{c} {n}" for c, n in card.rows.items())
    print(f"publish: wrote {out} ({shown} rows; licence {licence[0]})")
    if args.push_to_hub:
        print(f"pushed to {pub.push_to_hub(out, args.push_to_hub, args.private)}")


def behaviour_table(sources: list) -> dict:
    """The behaviour table all inputs were made with: path, sha256, the file (to copy), its text,
    the models excluded. Inputs made with different tables, or a table changed since its run
    (when the meta records its sha256), are refused."""
    from zebra.publish import PublishError, sha256_file

    found = {}
    for s in sources:
        path = s.meta["settings"].get("benchmark")
        recorded = (s.meta.get("behaviour_table") or {}).get("sha256")
        current = sha256_file(path) if path and Path(path).is_file() else None
        if recorded and current and recorded != current:
            raise PublishError(f"{path} changed since {s.path} was made (sha256 {current[:12]}… now, {recorded[:12]}… "
                               "in its meta); remake the data or restore the table")
        found[s.path] = (path, recorded or current)
    shas = {sha for _, sha in found.values()}
    if len(shas) > 1:
        raise PublishError("the inputs were made with different behaviour tables: "
                           + "; ".join(f"{p}: {path}" for p, (path, _) in found.items()) + "; publish them separately")
    path, sha = next(iter(found.values()))
    readable = path and Path(path).is_file() and sha256_file(path) == sha
    excluded = (sources[0].meta.get("behaviour_table") or {}).get("excluded_missing_score") or []
    return {"path": path, "sha256": sha, "file": Path(path) if readable else None,
            "text": Path(path).read_text(encoding="utf-8") if readable and Path(path).stat().st_size < 20_000 else None,
            "excluded": excluded}


if __name__ == "__main__":
    from zebra.cli import main_guard  # Ctrl-C: one line, exit 130
    main_guard(main)
