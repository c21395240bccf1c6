"""The training grid: one YAML recipe per run, planned into data and `accelerate launch` commands.

A recipe (recipes/<model>/<method>-<strategy>.yaml) names its script, accelerate config, data file
and the script's flags (`args`); recipes/data.yaml says how each data file is made. `grid_plan`
turns a glob of recipes into the commands train_grid.py runs (missing data first, then one launch
per unfinished run) and `check_recipe_flags` parses every run's flags with the script's own parser
before the first one starts, so a bad recipe is one line naming the recipe and the key.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zebra.errors import ZebraError
from zebra.jsonio import not_a_file, read_yaml

RECIPE_KEYS = {"script", "accelerate_config", "data", "args"}
SCRIPTS = {"train_sft.py": "sft", "train_dpo.py": "dpo"}
# Flags that make a recipe's run its own: after `--` they would apply to every run of the grid
# (all 32 trained on one file, or into one folder), so the grid refuses them.
RUN_FLAGS = ("--data", "--output-dir", "--model", "--gguf-file")
# This interpreter's accelerate, not whichever `accelerate` is first on PATH (a venv not activated).
LAUNCH = [sys.executable, "-m", "accelerate.commands.launch"]
SAMPLE_WARNING = ("no --data: the data commands read the binarize scripts' shipped pool (403 AlpacaEval prompts), "
                  "far too little for the paper's 3B-8B runs")


def args_to_flags(args: dict[str, Any]) -> list[str]:
    """{"batch_size": 6, "lora": True, "bf16": False} → ["--batch-size", "6", "--lora", "--no-bf16"]."""
    flags: list[str] = []
    for key, value in args.items():
        flag = "--" + str(key).replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value is False:
            flags.append("--no-" + str(key).replace("_", "-"))
        elif value is not None:
            flags += [flag, str(value)]
    return flags


def load_recipe(path: str | Path) -> dict[str, Any]:
    """Read and check one run recipe; errors name the file and the key. The accelerate config must
    exist (relative to the folder the grid runs in): a dry run that passes must not launch into a
    missing file."""
    path = Path(path)
    recipe = read_yaml(path, "recipe")
    if not isinstance(recipe, dict):
        raise ZebraError(f"{path}: expected a mapping with keys {sorted(RECIPE_KEYS)}")
    missing = RECIPE_KEYS - set(recipe)
    unknown = set(recipe) - RECIPE_KEYS
    if missing or unknown:
        raise ZebraError(f"{path}: missing keys {sorted(missing)}, unknown keys {sorted(map(str, unknown))}")
    if not isinstance(recipe["args"], dict) or "output_dir" not in recipe["args"] or "model" not in recipe["args"]:
        raise ZebraError(f"{path}: `args` must be a mapping with at least model and output_dir")
    if recipe["script"] not in SCRIPTS:
        raise ZebraError(f"{path}: script {recipe['script']!r} is neither train_sft.py nor train_dpo.py")
    for key in ("data", "accelerate_config"):
        if not isinstance(recipe[key], str) or not recipe[key]:
            raise ZebraError(f"{path}: {key} must be a file name, not {recipe[key]!r}")
    if problem := not_a_file(recipe["accelerate_config"]):
        raise ZebraError(f"{path}: accelerate_config {problem} here ({Path.cwd()}); "
                         "run the grid from the repository root, or fix the recipe")
    return {**recipe, "name": f"{path.parent.name}/{path.stem}", "path": str(path)}


def recipe_method(recipe: dict[str, Any]) -> str:
    """"sft" or "dpo", from the recipe's script (not its file name)."""
    return SCRIPTS[recipe["script"]]


def recipe_label(recipe: dict[str, Any]) -> str:
    """The run's name without its method: `dpo-sup` → `sup`, `dpo-sup-weighted` → `sup-weighted`, `weighted` → `weighted`."""
    run = recipe["name"].split("/")[-1]
    return run.removeprefix(recipe_method(recipe) + "-") or run


def shown_command(cmd: list[str]) -> str:
    """A grid command as a user would type it: `python ...`, `accelerate launch ...`."""
    if cmd[: len(LAUNCH)] == LAUNCH:
        cmd = ["accelerate", "launch", *cmd[len(LAUNCH):]]
    return shlex.join(["python" if c == sys.executable else c for c in cmd])


def recipe_command(recipe: dict[str, Any], num_processes: int | None = None, extra: list[str] = ()) -> list[str]:
    """`accelerate launch --config_file ... train_x.py --data ... --model ...` for one recipe."""
    cmd = [*LAUNCH, "--config_file", recipe["accelerate_config"]]
    if num_processes:
        cmd += ["--num_processes", str(num_processes)]
    cmd += [recipe["script"], "--data", str(recipe["data"]), *args_to_flags(recipe["args"]), *extra]
    return cmd


def data_commands(entries: dict[str, Any], needed: list[str], data: str | None,
                  source: str = "recipes/data.yaml") -> list[list[str]]:
    """Commands that make the data files in `needed` (recipes/data.yaml entries), inputs first.

    An entry reads UltraFeedback (`--data <data>`, train_grid.py's --data) unless it names an `input:`, another
    entry's output (e.g. select_potential.py re-scores SUP data): that file is made first when
    missing.
    """
    if not isinstance(entries, dict):
        raise ZebraError(f"{source}: expected a mapping of data entries (name: {{script, output}})")
    for name, entry in entries.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("script"), str) or not isinstance(entry.get("output"), str):
            raise ZebraError(f"{source}: entry {name!r} needs a `script` and an `output` file name")
        if not isinstance(entry.get("args") or {}, dict):
            raise ZebraError(f"{source}: entry {name!r}: `args` must be a mapping")
    by_output = {str(e["output"]): e for e in entries.values()}
    commands: list[list[str]] = []
    planned: set[str] = set()

    def plan(output: str) -> None:
        if output in planned:
            return
        entry = by_output.get(output)
        if entry is None:
            raise ZebraError(f"{source}: no entry writes {output}; add one or make the file yourself")
        cmd = [sys.executable, entry["script"], "--output", output]
        if entry.get("input"):
            source_file = str(entry["input"])
            if not Path(source_file).exists():
                plan(source_file)
            cmd += ["--data", source_file]
        elif data:
            cmd += ["--data", data]
        planned.add(output)
        commands.append(cmd + args_to_flags(entry.get("args") or {}))

    for output in dict.fromkeys(needed):
        plan(str(output))
    return commands


@dataclass
class GridPlan:
    """What train_grid.py runs: recipes matched, those still to train, data and training commands."""

    recipes: list[dict[str, Any]]
    todo: list[dict[str, Any]]
    data: list[list[str]]
    training: list[list[str]]

    @property
    def commands(self) -> list[list[str]]:
        return self.data + self.training


def find_recipes(recipes_glob: str, only: str | None) -> list[dict[str, Any]]:
    """The run recipes a glob matches (recipes/accelerate/ holds configs, not runs), filtered by --only."""
    import fnmatch
    import glob

    paths = sorted(p for p in glob.glob(recipes_glob) if Path(p).parent.name != "accelerate")
    recipes = [load_recipe(p) for p in paths]
    recipes = [r for r in recipes if not only or fnmatch.fnmatchcase(r["name"], only)]
    if not recipes:
        raise ZebraError(f"no recipe matches --recipes {recipes_glob} --only {only}")
    return recipes


def grid_plan(recipes_glob: str, only: str | None, data: str | None, num_processes: int | None = None,
              extra: list[str] = (), rerun: bool = False, data_recipes: str = "recipes/data.yaml") -> GridPlan:
    """The grid's commands, in order: the missing data files first, then one launch per unfinished run.

    A run counts as finished when `run_is_done(output_dir)` (finite metrics.json); `rerun` redoes all.
    """
    from zebra.run_folder import run_is_done

    if num_processes is not None and num_processes < 1:
        raise ZebraError(f"--num-processes {num_processes}: must be >= 1")
    recipes = find_recipes(recipes_glob, only)
    todo = [r for r in recipes if rerun or not run_is_done(r["args"]["output_dir"])]
    missing = [r["data"] for r in todo if not Path(r["data"]).exists()]
    data_cmds = data_commands(read_yaml(data_recipes, "data recipes file", expect=dict), missing, data, data_recipes) if missing else []
    training = [recipe_command(r, num_processes, list(extra)) for r in todo]
    return GridPlan(recipes, todo, data_cmds, training)


class _FlagError(Exception):
    """argparse's complaint, raised instead of printing usage and exiting."""


def _raise(message: str):
    raise _FlagError(message)


def check_recipe_flags(recipe: dict[str, Any], parser: argparse.ArgumentParser, extra: list[str] = ()) -> None:
    """Parse a recipe's flags (and the grid's flags after `--`) with the script's own parser and check
    the settings, so a bad recipe value or pass-through flag fails once, before the grid starts, in
    one line naming the recipe and its key (not argparse's usage text)."""
    from zebra.training_settings import TrainSettings

    where, script = recipe["path"], recipe["script"]
    parser.error = _raise  # argparse would print usage and exit 2, naming neither recipe nor key
    parser.allow_abbrev = False  # a key `batch` is not --batch-size
    required = ["--data", recipe["data"], "--model", "m", "--output-dir", "o"]
    for key, value in recipe["args"].items():
        flags = args_to_flags({key: value})
        try:
            _, unknown = parser.parse_known_args([*required, *flags])
        except _FlagError as err:
            raise ZebraError(f"{where}: args.{key} = {value!r}: {err}") from None
        if unknown:
            raise ZebraError(f"{where}: unknown key args.{key} ({script} has no flag {flags[0]})")
    taken = [a.split("=")[0] for a in extra if a.split("=")[0] in RUN_FLAGS]
    if taken:
        raise ZebraError(f"{taken[0]} after --: every recipe names its own ({where}: "
                         f"{'data' if taken[0] == '--data' else 'args.' + taken[0][2:].replace('-', '_')}); a flag after -- "
                         "would apply to every run of the grid, so edit the recipes instead")
    flags = ["--data", recipe["data"], *args_to_flags(recipe["args"])]
    settings = vars(parser.parse_args(flags))
    try:
        TrainSettings(method=recipe_method(recipe), **settings).check()
    except ZebraError as err:
        key = str(err).split()[0].lstrip("-").replace("-", "_")
        raise ZebraError(f"{where}: args.{key}: {err}" if key in recipe["args"] else f"{where}: {err}") from None
    try:
        settings = vars(parser.parse_args([*flags, *extra]))
    except _FlagError as err:
        raise ZebraError(f"the flags after --: {err}") from None
    TrainSettings(method=recipe_method(recipe), **settings).check()


def overridden(recipes: list[dict[str, Any]], extra: list[str]) -> list[str]:
    """`--lr 1e-4 (recipes: 5e-05)` for each flag after `--` that replaces a value some recipe sets."""
    notes = []
    for i, arg in enumerate(extra):
        if not arg.startswith("--"):
            continue
        flag, _, value = arg.partition("=")
        if not value and i + 1 < len(extra) and not extra[i + 1].startswith("--"):
            value = extra[i + 1]
        key = flag[2:].replace("-", "_")
        values = sorted({str(r["args"][key]) for r in recipes if key in r["args"]})
        if values:
            notes.append(f"{f'{flag} {value}'.strip()} (recipes: {', '.join(values)})")
    return notes
