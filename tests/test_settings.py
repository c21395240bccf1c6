"""zebra.settings: range checks and the output-is-not-an-input rule, however a path is spelled."""

import os

import pytest

from zebra.settings import SettingError, check_output_path


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "in" / "data.jsonl"
    path.parent.mkdir()
    path.write_text("{}\n")
    return path


@pytest.mark.parametrize("spelling", ["plain", "dotdot", "symlink", "symlinked_folder", "hard_link"])
def test_an_input_under_another_name_is_refused(tmp_path, data, spelling):
    if spelling == "plain":
        out = data
    elif spelling == "dotdot":
        out = tmp_path / "in" / ".." / "in" / "data.jsonl"
    elif spelling == "symlink":
        out = tmp_path / "link.jsonl"
        out.symlink_to(data)
    elif spelling == "symlinked_folder":
        (tmp_path / "alias").symlink_to(data.parent)
        out = tmp_path / "alias" / "data.jsonl"
    else:
        out = tmp_path / "hard.jsonl"
        os.link(data, out)  # another name for the same file: writing one rewrites the other's bytes
    with pytest.raises(SettingError, match="would overwrite the input"):
        check_output_path(out, [data])
    with pytest.raises(SettingError, match="would overwrite the input"):
        check_output_path(data, [out])  # the input named through the link, the output plainly


def test_other_files_pass(tmp_path, data):
    check_output_path(tmp_path / "out.json", [data, None, "org/hub-id"])
    (tmp_path / "copy.jsonl").write_bytes(data.read_bytes())  # same bytes, another file: allowed
    check_output_path(tmp_path / "copy.jsonl", [data])
