"""Record → trl conversion (zebra/formats.py): exact outputs, skips with counts, one-line errors."""

import json
import math

import pytest

from zebra.errors import ZebraError
from zebra.formats import convert_record, convert_records
from zebra.records import RecordWriter, read_records


def record(prompt="What is 2+2?", chosen="4.", rejected="5.", prompt_id=None, **extra):
    """One record exactly as binarize_*.py writes it."""
    out = {
        "prompt": prompt,
        "most_similar_pair": ["gpt-4", "bard"],
        "chosen": [{"content": prompt, "role": "user"}, {"content": chosen, "role": "assistant"}],
        "rejected": [{"content": prompt, "role": "user"}, {"content": rejected, "role": "assistant"}],
        "kinship_rank": 1,
        "prompt_id": prompt_id or f"id-{prompt}",
        "mb_sup_chosen": 0.99,
        "mb_sup_rejected": 0.86,
        "mb_sim": 0.97,
    }
    out.update(extra)
    return out


def test_dpo_conversational_preference_with_explicit_prompt():
    examples, counts = convert_records([record()], "dpo")
    assert examples == [{
        "prompt": [{"role": "user", "content": "What is 2+2?"}],
        "chosen": [{"role": "assistant", "content": "4."}],
        "rejected": [{"role": "assistant", "content": "5."}],
    }]
    assert counts["records"] == 1 and counts["kept"] == 1


def test_sft_prompt_completion_from_chosen():
    examples, _ = convert_records([record()], "sft")
    assert examples == [{
        "prompt": [{"role": "user", "content": "What is 2+2?"}],
        "completion": [{"role": "assistant", "content": "4."}],
    }]


def test_trl_recognises_the_formats():
    from trl.data_utils import is_conversational

    dpo, _ = convert_records([record()], "dpo")
    sft, _ = convert_records([record()], "sft")
    assert is_conversational(dpo[0]) and is_conversational(sft[0])


def test_weight_column_passes_through_as_weight():
    examples, _ = convert_records([record(w=2.5), record("Other?", w=0)], "dpo", weight_column="w")
    assert [e["weight"] for e in examples] == [2.5, 0.0]
    assert "w" not in examples[0]


def test_bare_string_responses_use_the_prompt_field():
    rec = {"prompt": "Hi?", "chosen": "Hello.", "rejected": "Go away."}
    assert convert_record(rec, "dpo") == {
        "prompt": [{"role": "user", "content": "Hi?"}],
        "chosen": [{"role": "assistant", "content": "Hello."}],
        "rejected": [{"role": "assistant", "content": "Go away."}],
    }


def test_skips_are_counted_per_reason():
    records = [
        record("A?"),
        record("A?", chosen="again"),  # same prompt_id as the first
        record("", prompt_id="e1"),  # empty prompt
        record("B?", chosen="  "),  # empty chosen
        record("C?", rejected=""),  # empty rejected
        record("D?", chosen="same", rejected="same"),  # no preference
        {**record("E?"), "prompt": "Something else?"},  # prompt field differs from the conversation
        {**record("F?"), "rejected": [{"role": "user", "content": "G?"}, {"role": "assistant", "content": "x"}]},
        record("H?"),
    ]
    examples, counts = convert_records(records, "dpo")
    assert [e["prompt"][0]["content"] for e in examples] == ["A?", "H?"]
    assert examples[0]["chosen"][0]["content"] == "4."  # the first of the duplicates is kept
    assert counts == {
        "records": 9, "kept": 2, "skipped_empty": 3, "skipped_duplicate_prompt": 1,
        "skipped_prompt_mismatch": 2, "skipped_identical_responses": 1,
    }


def test_sft_keeps_identical_responses_and_ignores_rejected():
    rec = record("D?", chosen="same", rejected="same")
    del rec["rejected"]
    examples, counts = convert_records([rec], "sft")
    assert counts["kept"] == 1 and examples[0]["completion"][0]["content"] == "same"


def test_duplicates_found_by_text_without_prompt_id():
    a, b = record("Q?"), record(" Q? ", chosen="other")
    a.pop("prompt_id"), b.pop("prompt_id")
    b["chosen"][0]["content"] = b["rejected"][0]["content"] = "Q?"
    _, counts = convert_records([a, b], "dpo")
    assert counts["kept"] == 1 and counts["skipped_duplicate_prompt"] == 1


def test_missing_field_names_file_and_row():
    bad = record()
    del bad["rejected"]
    with pytest.raises(ZebraError, match=r"sup\.json row 1: missing field\(s\) 'rejected'"):
        convert_records([record(), bad], "dpo", source="sup.json")


def test_conversation_must_end_with_the_response():
    bad = record()
    bad["chosen"] = bad["chosen"][:1]
    with pytest.raises(ZebraError, match="row 0: field 'chosen' does not end with an assistant message"):
        convert_records([bad], "dpo")


@pytest.mark.parametrize("value, message", [
    ("1.0", "not numeric"), (True, "not numeric"), (None, "empty"), (-1.0, "must be finite and >= 0"),
    (math.nan, "must be finite"), (math.inf, "must be finite"),
])
def test_bad_weights_are_errors(value, message):
    with pytest.raises(ZebraError, match=message):
        convert_records([record(w=value)], "dpo", weight_column="w", source="f.json")


def test_missing_weight_column_lists_the_fields():
    with pytest.raises(ZebraError, match=r"f\.json row 0: no field 'weight' for --weight-column"):
        convert_records([record()], "dpo", weight_column="weight", source="f.json")


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".parquet"])
def test_every_binarize_output_format_converts_the_same(tmp_path, suffix):
    records = [record("A?"), record("B?", rejected="6.")]
    path = tmp_path / f"sup{suffix}"
    with RecordWriter(path) as writer:
        writer.write(records)
    examples, counts = convert_records(read_records(path), "dpo")
    assert counts["kept"] == 2
    assert examples == convert_records(json.loads(json.dumps(records)), "dpo")[0]


def test_the_shipped_sample_sup_output_converts_without_loss(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "sup.jsonl"
    done = subprocess.run([sys.executable, "binarize_score.py", "--output", str(out)], cwd=root,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    records = read_records(out)
    for method in ("dpo", "sft"):
        examples, counts = convert_records(records, method, source=str(out))
        assert counts["kept"] == counts["records"] == len(records) > 100
        assert [e["prompt"] for e in examples] == [[{"role": "user", "content": r["prompt"]}] for r in records]
    assert examples[0]["completion"][0]["content"] == records[0]["chosen"][1]["content"]
