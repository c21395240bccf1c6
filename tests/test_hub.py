"""The hub is probed once, quickly, before anything waits on it: without network a hub id is a
one-line error at once, not 25 s of retries with every warning printed twice (issue 24 §3)."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from zebra import hub
from zebra.errors import ZebraError

ROOT = Path(__file__).resolve().parents[1]


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_endpoint_is_one_line_naming_the_host(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(ZebraError, match=r"--data someone/x: cannot reach the Hugging Face hub at 127\.0\.0\.1") as err:
        hub.require_reachable("--data someone/x")
    assert "\n" not in str(err.value) and "HF_HUB_OFFLINE=1" in str(err.value)


def test_reachable_endpoint_passes(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        hub.require_reachable("--data someone/x")  # no error


def test_offline_skips_the_probe(monkeypatch):
    """HF_HUB_OFFLINE: the libraries read their cache and say themselves what is missing."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    assert hub.offline()
    hub.require_reachable("--data someone/x")


@pytest.mark.parametrize("value,expected", [("1", True), ("ON", True), ("yes", True), ("0", False), ("", False)])
def test_offline_reads_the_variable_as_huggingface_hub_does(monkeypatch, value, expected):
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert hub.offline() is expected


def test_binarize_with_an_unreachable_hub_stops_at_once_without_retries(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env["HF_ENDPOINT"] = f"http://127.0.0.1:{closed_port()}"
    proc = subprocess.run([sys.executable, "binarize_score.py", "--data", "someone/nonexistent",
                           "--output", str(tmp_path / "x.json")], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cannot reach the Hugging Face hub" in errors[0], proc.stderr
    assert "Retry" not in proc.stderr
    assert not (tmp_path / "x.json").exists()
