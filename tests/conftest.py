"""Shared fixtures: small generated images, the shared data folder, a private cache dir."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO.parent / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "content").is_dir():
        pytest.skip(f"{SHARED_DATA} not present")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session", autouse=True)
def _iecast_home(tmp_path_factory):
    """Keep converted weights out of the user's cache, shared across the session."""
    import os

    home = tmp_path_factory.mktemp("iecast_home")
    old = os.environ.get("IECAST_HOME")
    os.environ["IECAST_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("IECAST_HOME", None)
    else:
        os.environ["IECAST_HOME"] = old
