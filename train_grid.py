"""The paper's training grid on a GPU box: 4 models × {SFT, DPO} × {baseline, SUP, SIM, SUP+SIM}.

    # see every command first (no GPU needed; this is what the tests run)
    python train_grid.py --dry-run

    # the whole grid on a 4-GPU box: makes the four data files from UltraFeedback if missing,
    # then one `accelerate launch` per recipe, skipping runs whose metrics.json already exists
    python train_grid.py --ultrafeedback openbmb/UltraFeedback

    # a subset, on 8 GPUs, or a quick end-to-end check of every recipe (extra flags after --)
    python train_grid.py --only 'qwen2.5-3b/dpo-*' --num-processes 8
    python train_grid.py --only 'llama-3.2-3b/*' -- --max-steps 5

Each run is a file in recipes/<model>/<method>-<strategy>.yaml (script, accelerate config, data,
flags); edit a recipe to change one run. The data files come from recipes/data.yaml.
"""

import argparse
import fnmatch
import glob
import shlex
import subprocess
import sys
from pathlib import Path

from zebra.errors import ZebraError
from zebra.training import data_commands, load_recipe, recipe_command

RECIPES = "recipes/*/*.yaml"  # one per paper run; recipes/data.yaml and recipes/accelerate/ are not runs
DATA_RECIPES = "recipes/data.yaml"
ULTRAFEEDBACK = None  # None: the binarize scripts' shipped sample; on the GPU box: openbmb/UltraFeedback or a mirror
NUM_PROCESSES = None  # None: what the accelerate config says (4, the paper's 4×L40)


LAUNCH = [sys.executable, "-m", "accelerate.commands.launch"]  # what recipe_command runs: this interpreter's accelerate


def shown(cmd: list[str]) -> str:
    """The command as a user would type it: `python ...`, `accelerate launch ...`."""
    if cmd[: len(LAUNCH)] == LAUNCH:
        cmd = ["accelerate", "launch", *cmd[len(LAUNCH):]]
    return shlex.join(["python" if c == sys.executable else c for c in cmd])


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
    ap.add_argument("--ultrafeedback", default=ULTRAFEEDBACK, help="--data for the binarize scripts (hub id or local copy)")
    ap.add_argument("--num-processes", type=int, default=NUM_PROCESSES, help="GPUs per run (default: from the config)")
    ap.add_argument("--rerun", action="store_true", help="also run recipes whose output_dir has metrics.json")
    ap.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args, extra = ap.parse_known_args()
    extra = [a for a in extra if a != "--"]

    try:
        import yaml

        paths = sorted(p for p in glob.glob(args.recipes) if Path(p).parent.name != "accelerate")
        recipes = [load_recipe(p) for p in paths]
        recipes = [r for r in recipes if not args.only or fnmatch.fnmatchcase(r["name"], args.only)]
        if not recipes:
            raise ZebraError(f"no recipe matches --recipes {args.recipes} --only {args.only}")
        todo = [r for r in recipes if args.rerun or not (Path(r["args"]["output_dir"]) / "metrics.json").exists()]
        missing_data = [r["data"] for r in todo if not Path(r["data"]).exists()]
        entries = yaml.safe_load(Path(DATA_RECIPES).read_text())
        commands = data_commands(entries, missing_data, args.ultrafeedback)
        commands += [recipe_command(r, args.num_processes, extra) for r in todo]
    except ZebraError as err:
        raise SystemExit(f"error: {err}")

    print(f"# {len(recipes)} recipes, {len(recipes) - len(todo)} already done, {len(commands)} commands", flush=True)
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
    main()
