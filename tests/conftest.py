"""Fixtures several test files share."""

import tempfile

import pytest

from tests.tiny import make_tiny_model_dir


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny random model folder (tests/tiny.py), made once per test module."""
    return str(make_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "model"))


def pytest_configure(config):
    # hypothesis keeps caches in ./.hypothesis by default: not in the checkout
    from hypothesis.configuration import set_hypothesis_home_dir

    set_hypothesis_home_dir(tempfile.mkdtemp(prefix="zebra-hypothesis-"))
