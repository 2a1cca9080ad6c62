"""Shared by the end-to-end finetune tests of this folder: a tiny checkpoint and labelled data."""

from __future__ import annotations

import pytest

@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    from tests.fixtures.sentiment import finetune_workdir

    return finetune_workdir(tmp_path_factory.mktemp("ft"))
