"""The README's commands stay true: every script it names exists and takes every flag it shows,
and the commands that run on the shipped sample do run."""

import json
import re
import shlex
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def commands() -> list[list[str]]:
    """`python …` commands of the README's bash blocks, continuation lines joined, comments dropped."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        text = block.replace("\\\n", " ")
        for line in text.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("python ") and not line.startswith("python -c"):
                out.append(shlex.split(line.replace('"$SMOL"', "SMOL")))
    return out


COMMANDS = commands()


def target(cmd: list[str]) -> tuple[list[str], list[str]]:
    """(how to call the script, its arguments)."""
    if cmd[1] == "-m":
        return [sys.executable, "-m", cmd[2]], cmd[3:]
    return [sys.executable, str(ROOT / cmd[1])], cmd[2:]


@lru_cache(maxsize=None)
def help_text(call: tuple[str, ...], sub: str | None) -> str:
    text = subprocess.run([*call, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120).stdout
    if sub:
        text += subprocess.run([*call, sub, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120).stdout
    return text


def test_readme_has_the_two_commands():
    assert "make demo" in README and "make test" in README
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


def test_readme_names_many_commands():
    scripts = {c[1] for c in COMMANDS}
    assert {"binarize_score.py", "binarize_similarity.py", "binarize_combined.py", "binarize_baseline.py",
            "train_sft.py", "train_dpo.py", "evaluate.py", "analyze.py", "reproduce.py"} <= scripts


@pytest.mark.parametrize("cmd", COMMANDS, ids=[" ".join(c[1:3]) for c in COMMANDS])
def test_every_flag_shown_is_accepted(cmd):
    call, args = target(cmd)
    if call[1] != "-m":
        assert Path(call[1]).is_file(), f"README names a missing script: {cmd[1]}"
    sub = args[0] if args and not args[0].startswith("-") else None
    text = help_text(tuple(call), sub)
    assert "usage:" in text, f"{cmd[1]} --help printed no usage"
    for flag in (a.split("=")[0] for a in args if a.startswith("--")):
        assert re.search(rf"{re.escape(flag)}(?![\w-])", text), f"README: {cmd[1]} has no flag {flag}"


def _local_data(cmd: list[str]) -> bool:
    """No --data (the shipped pool), or a --data in this checkout (not a hub id or someone's mirror)."""
    return "--data" not in cmd or (ROOT / cmd[cmd.index("--data") + 1]).exists()


SAMPLE_RUNS = [c for c in COMMANDS if c[1].startswith("binarize_") and _local_data(c)]
PROMPTS = {"data/alpaca_eval": 403, "data/ultrafeedback_sample.jsonl": 300,  # rows each source holds
           "tests/data/arena_hard/model_answer": 5}
STRATEGY = {"binarize_score.py": "sup", "binarize_similarity.py": "sim", "binarize_combined.py": "sup_sim",
            "binarize_baseline.py": "baseline"}


@pytest.mark.parametrize("cmd", SAMPLE_RUNS, ids=[" ".join(c[1:]) for c in SAMPLE_RUNS])
def test_sample_commands_run(cmd, tmp_path):
    """Each README binarize command on the shipped data runs, and its meta says what it did: the
    settings the command gives, every prompt accounted for, as many records as it says."""
    from zebra.records import read_records

    call, args = target(cmd)
    # the README's own command, with the output sent to a temporary folder (argparse: last one wins)
    out = tmp_path / "o.json"
    proc = subprocess.run([*call, *args, "--output", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    meta = json.loads(Path(f"{out}.meta.json").read_text(encoding="utf-8"))
    settings, counts = meta["settings"], meta["counts"]
    for flag, value in zip(args, [*args[1:], "--"]):
        if not flag.startswith("--") or flag in ("--output", "--order"):
            continue
        name = flag[2:].replace("-", "_")
        name = {"behaviour_table": "benchmark"}.get(name, name)  # the meta's key from before the flag's rename
        got = settings[name] if name in settings else settings["pool"][name]
        if value.startswith("--"):  # a switch
            assert got is True, flag
        else:
            assert got == value or (isinstance(got, (int, float)) and got == float(value)), (flag, got, value)
    strategy = STRATEGY[cmd[1]] + ("_least" if "least" in args else "")
    assert (settings["strategy"], settings["output"]) == (strategy, str(out))
    source = args[args.index("--data") + 1] if "--data" in args else "data/alpaca_eval"
    limit = int(args[args.index("--limit") + 1]) if "--limit" in args else None
    assert counts["rows_read"] == (limit or PROMPTS[source])
    assert counts["rows_written"] + sum(counts["rows_skipped"].values()) == counts["rows_read"]
    assert counts["rows_written"] == len(read_records(out)) > 0
    assert f"wrote {counts['rows_written']} of {counts['rows_read']} prompts" in proc.stdout


def test_the_cpu_ratio_table_is_the_benchmark_result_it_names():
    """README's CPU ratios (constructors and bound against the floor) are those of the result file
    its command wrote, row for row: a rerun that is not copied into the README fails here."""
    result = json.loads((ROOT / "benchmarks/results/binarize_speed_issue23.json").read_text())
    head = "| rows | cache | SUP | SIM | SUP+SIM | baseline | bound | floor CPU s |"
    assert head in README
    rows = README.split(head)[1].split("\n\n")[0].splitlines()[2:]
    summary = result["summary"]
    expected = []
    for scale in result["scales"]:
        for mode in ("warm", "cold"):
            ratio = {r["constructor"]: r["cpu_ratio_to_floor"] for r in summary["rows"]
                     if r["scale"] == scale and r["mode"] == mode}
            bound = next(b for b in summary["bound"] if b["scale"] == scale and b["mode"] == mode)
            expected.append([f"{result['rows'] * scale:,}", mode, *(f"{ratio[c]:.2f}" for c in ("sup", "sim", "sup_sim", "baseline")),
                             f"{bound['cpu_ratio_to_floor']:.2f}", f"{bound['floor_cpu_seconds']:.3g}"])
    assert [[cell.strip() for cell in row.strip("|").split("|")] for row in rows] == expected


def _speed_table(result: dict) -> str:
    """The README's main speed table, as the whole benchmark's result file gives it."""
    names = {"sup": "SUP", "sim": "SIM", "sup_sim": "SUP+SIM", "baseline": "baseline"}
    secs = lambda v: f"{v:.2f} s" if v < 10 else f"{v:.1f} s"  # noqa: E731
    lines = ["| rows | cache | constructor | seconds | peak RSS | × I/O floor | per-row reference | speed-up | RSS ÷ reference | selection alone |",
             "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for scale, mode, name in [(1, "warm", c) for c in names] + [(1, "cold", "sup"), (10, "warm", "sup"), (10, "cold", "sup")]:
        r = next(x for x in result["summary"]["rows"] if (x["scale"], x["mode"], x["constructor"]) == (scale, mode, name))
        rss = f"{r['peak_rss_mb']:,.0f} MB" + (f" ({r['rss_vs_1x']:.2f} × 1×)" if "rss_vs_1x" in r else "")
        ref = (f"{secs(r['reference_seconds'])}, {r['reference_peak_rss_mb']:,.0f} MB" if r["reference_seconds"]
               else "not run (would hold ~18 GB)" if (scale, mode) == (10, "warm") else "—")
        vs_ref = f"{r['speedup_vs_reference']:.1f}× | {r['rss_share_of_reference']:.2f}" if r["speedup_vs_reference"] else "— | —"
        sel = secs(r["select_seconds"]) if r["select_seconds"] is not None else "—"
        lines.append(f"| {result['rows'] * scale:,} | {mode} | {names[name]} | {secs(r['seconds'])} | {rss} | "
                     f"{r['ratio_to_floor']:.2f} | {ref} | {vs_ref} | {sel} |")
    return "\n".join(lines)


def test_the_speed_table_is_the_whole_benchmark_result():
    """README's main speed table is benchmarks/results/binarize_speed.json, the whole benchmark's
    result, cell for cell."""
    result = json.loads((ROOT / "benchmarks/results/binarize_speed.json").read_text())
    assert _speed_table(result) in README
