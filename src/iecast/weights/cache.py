"""Where weight files live and how they are fetched and read: the cache folder, checksums,
atomic publishing, downloads, torch state dicts and loading one into a module, every failure
as a one-line `IecastError`."""
from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import torch
from tqdm.auto import tqdm

from iecast.errors import IecastError


def cache_dir() -> Path:
    """Where downloaded and converted weights live: `$IECAST_HOME`, default `~/.cache/iecast`."""
    return Path(os.environ.get("IECAST_HOME", Path.home() / ".cache" / "iecast")).expanduser()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_sha256(path: Path, expected: str | None) -> None:
    """Raise unless the file's sha256 starts with `expected` (a full digest or a prefix)."""
    if expected and not sha256_file(path).startswith(expected):
        raise IecastError(f"{path}: sha256 does not match the expected {expected[:16]}...; the file is corrupt or not the right one")


def publish(tmp: str | Path, path: str | Path) -> None:
    """Move a finished temporary file into place with the permissions a new file gets under the
    umask (temp files and safetensors' writer leave 0600, which other users cannot read)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def download(url: str, dest: Path, sha256: str | None, progress: bool = True) -> Path:
    """Download `url` to `dest` atomically with a progress bar, then check its sha256."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=dest.name, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress) as bar:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
        actual = sha256_file(Path(tmp_name))
        if sha256 and not actual.startswith(sha256):
            raise IecastError(f"{url}: the download's sha256 {actual[:16]}... does not match the expected {sha256[:16]}...; "
                              f"nothing was saved; place the right {dest.name} at {dest}")
        publish(tmp_name, dest)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise IecastError(f"could not download {url} ({exc}); with no network, place {dest.name} at {dest}") from exc
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return dest


def read_torch_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """`torch.load(..., weights_only=True)` with every failure as a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise IecastError(f"{path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for bad files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise IecastError(f"{path}: not a readable PyTorch checkpoint ({reason[:160]})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise IecastError(f"{path}: not a state dict of tensors")
    return state


def load_into(module: torch.nn.Module, state: dict[str, torch.Tensor], path: str | Path, what: str) -> None:
    """Load a complete state dict, naming missing, unexpected or mis-shaped keys in one line."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
              if k in state and state[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f"missing keys {missing[:4]}{'...' if len(missing) > 4 else ''}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected[:4]}{'...' if len(unexpected) > 4 else ''}")
    if shapes:
        problems.append(f"mis-shaped {shapes[:3]}{'...' if len(shapes) > 3 else ''}")
    if problems:
        raise IecastError(f"{path}: not a valid {what}: {'; '.join(problems)}")
    module.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})
