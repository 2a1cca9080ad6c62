"""Shared by the end-to-end finetune tests of this folder: a tiny checkpoint and labelled data."""

from __future__ import annotations

import pytest

@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    from tests.fixtures.sentiment import make_model, write_data

    root = tmp_path_factory.mktemp("ft")
    write_data(root / "data")
    make_model(root / "pre", kind="bert")
    return root
