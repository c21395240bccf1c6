r"""The paper's training grid on a GPU box: 4 models × {SFT, DPO} × {baseline, SUP, SIM, SUP+SIM}.

    # see every command first (no GPU needed; this is what the tests run)
    python train_grid.py --dry-run

    # the whole grid on a 4-GPU box: makes the four data files from UltraFeedback if missing,
    # then one `accelerate launch` per recipe, skipping finished runs (a metrics.json with finite losses);
    # without --data it refuses (the shipped 403-prompt pool is no data for 3B-8B models; --allow-sample)
    python train_grid.py --data openbmb/UltraFeedback

    # a subset, on 8 GPUs, or a quick end-to-end check of every recipe on the shipped pool (extra flags after --)
    python train_grid.py --data openbmb/UltraFeedback --only 'qwen2.5-3b/dpo-*' --num-processes 8
    python train_grid.py --allow-sample --only 'llama-3.2-3b/*' -- --max-steps 5

Each run is a file in recipes/<model>/<method>-<strategy>.yaml (script, accelerate config, data,
flags); edit a recipe to change one run. The data files come from recipes/data.yaml. Flags after
`--` go to every run and override the recipes' values (a `#` line lists which); `--data`,
`--model`, `--gguf-file` and `--output-dir` are refused there: each recipe names its own (the
grid's own `--data`, before `--`, is the binarize scripts' input, not a run's training file).
"""

import argparse
import subprocess
import sys

from zebra.cli import renamed
from zebra.errors import ZebraError
from zebra.recipes import SAMPLE_WARNING, check_recipe_flags, grid_plan, overridden
from zebra.recipes import shown_command as shown

RECIPES = "recipes/*/*.yaml"  # one per paper run; recipes/data.yaml and recipes/accelerate/ are not runs
DATA_RECIPES = "recipes/data.yaml"
DATA = None  # None: the binarize scripts' shipped pool (data/alpaca_eval); on the GPU box: openbmb/UltraFeedback or a mirror
NUM_PROCESSES = None  # None: what the accelerate config says (4, the paper's 4×L40)


def run_command(cmd: list[str]) -> str | None:
    """Run one grid step; None if it succeeded, else a one-line reason (the grid carries on)."""
    try:
        done = subprocess.run(cmd)
    except OSError as err:  # the program is missing or not executable: the step fails, not the grid
        return f"cannot start ({err.strerror}: {err.filename or cmd[0]})"
    return f"exit {done.returncode}" if done.returncode else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", default=RECIPES, help="glob of run recipes (default: %(default)s)")
    ap.add_argument("--only", default=None, help="glob on recipe names model/method-strategy, e.g. 'qwen2.5-3b/*' or '*/dpo-sup'")
    ap.add_argument("--data", default=DATA, help="UltraFeedback, the binarize scripts' --data in recipes/data.yaml "
                    "(hub id or local copy; default: their shipped pool, refused without --allow-sample)")
    ap.add_argument("--allow-sample", action="store_true",
                    help="without --data, make the data from the shipped 403-prompt pool anyway (toy runs)")
    ap.add_argument("--num-processes", type=int, default=NUM_PROCESSES, help="GPUs per run (default: from the config)")
    ap.add_argument("--rerun", action="store_true", help="also run recipes whose output_dir has a finished metrics.json")
    ap.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    renamed(ap, "--data", "--ultrafeedback")  # the old name (issue 21 §5)
    args, extra = ap.parse_known_args()
    extra = [a for a in extra if a != "--"]

    try:
        plan = grid_plan(args.recipes, args.only, args.data, args.num_processes, extra, args.rerun, DATA_RECIPES)
        import train_dpo
        import train_sft

        for recipe in plan.todo:  # every flag of every run checked before the first one starts
            check_recipe_flags(recipe, (train_dpo if recipe["script"] == "train_dpo.py" else train_sft).parser(), extra)
        if plan.data and not args.data and not args.allow_sample:
            if not args.dry_run:
                raise ZebraError(f"{SAMPLE_WARNING}; pass --data openbmb/UltraFeedback (or a local copy), "
                                 "or --allow-sample for a toy grid")
            print(f"WARNING: {SAMPLE_WARNING}; a real run refuses without --data or --allow-sample",
                  file=sys.stderr, flush=True)
    except ZebraError as err:
        raise SystemExit(f"error: {err}")

    recipes, todo, commands = plan.recipes, plan.todo, plan.commands
    print(f"# {len(recipes)} recipes, {len(recipes) - len(todo)} already done, {len(commands)} commands", flush=True)
    notes = overridden(todo, extra)
    if notes:
        print(f"# flags after -- override the recipes' values: {'; '.join(notes)}", flush=True)
    failed = 0
    for cmd in commands:
        print(shown(cmd), flush=True)
        if not args.dry_run:
            # one failed run (e.g. a gated model) should not cost the rest of the grid
            reason = run_command(cmd)
            if reason:
                failed += 1
                print(f"# failed ({reason}): {shown(cmd)}", file=sys.stderr, flush=True)
    if failed:
        raise SystemExit(f"error: {failed} of {len(commands)} commands failed (see '# failed' lines above)")


if __name__ == "__main__":
    from zebra.cli import main_guard  # Ctrl-C: one line, exit 130
    main_guard(main)
