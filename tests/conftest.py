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


@pytest.fixture(scope="module")
def one_thread():
    """For modules of tiny images: one thread is as fast, and immune to other processes
    sharing the CPU. Use with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> Path:
    """A random-init SANet stylizer on the offline encoder, saved in iecast's format."""
    from iecast.models import SANetTransform, StyleTransferNetwork
    from iecast.weights import DEFAULT_ENCODER, load_encoder, save_stylizer

    torch.manual_seed(0)
    network = StyleTransferNetwork(load_encoder(DEFAULT_ENCODER), SANetTransform())
    return save_stylizer(tmp_path_factory.mktemp("w") / "random.safetensors", network, DEFAULT_ENCODER)
