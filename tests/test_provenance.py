"""The real data the project ships is the data SPEC §11 names, byte for byte (where shared/ sits
beside the checkout, as on the project's machines and CI); SOURCE.md files say where it came from."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REALDATA = ROOT.parent / "shared" / "realdata"

COPIES = [
    *[(f"data/alpaca_eval/{name}", f"alpaca_eval/{name}") for name in
      ("model_outputs.jsonl", "annotations_alpaca_eval_gpt4.jsonl",
       "annotations_weighted_alpaca_eval_gpt4_turbo.jsonl", "model_names.csv")],
    *[(str(p.relative_to(ROOT)), f"lm_eval_results/{p.relative_to(ROOT / 'data' / 'lm_eval_results')}")
      for p in sorted((ROOT / "data" / "lm_eval_results").rglob("*.json"))],
    *[(str(p.relative_to(ROOT)), f"lm_eval_results/{p.relative_to(ROOT / 'tests' / 'data' / 'lm_eval')}")
      for p in sorted((ROOT / "tests" / "data" / "lm_eval").rglob("*.json"))
      if "leaderboard_v2" not in p.parts],  # transcribed, not copied: tests/test_lmeval.py checks the numbers
]


@pytest.mark.parametrize("shipped, origin", COPIES, ids=[c[0] for c in COPIES])
def test_shipped_real_data_is_the_original(shipped, origin):
    if not REALDATA.is_dir():
        pytest.skip("shared/realdata not beside this checkout")
    assert (ROOT / shipped).read_bytes() == (REALDATA / origin).read_bytes()


@pytest.mark.parametrize("folder", ["data/alpaca_eval", "data/eval", "data/lm_eval_results", "tests/data/lm_eval"])
def test_every_real_data_folder_says_where_it_came_from(folder):
    text = (ROOT / folder / "SOURCE.md").read_text(encoding="utf-8")
    assert "icen" in text  # a licence is named (Licence / License)
