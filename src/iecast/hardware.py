"""What the machine offers: which device to use and whether it computes bf16 natively.

One home for these decisions, shared by inference (`Stylizer`) and training (`TrainConfig`).
"""
from __future__ import annotations

import os

import torch

from iecast.errors import IecastError

NATIVE_BF16_ENV = "IECAST_NATIVE_BF16"  # "1"/"0" overrides the CPU detection (tests, odd hypervisors)


def cpu_native_bf16() -> bool:
    """True on CPUs with AMX tiles or AVX512-BF16, where bf16 matmuls run several times faster than fp32."""
    override = os.environ.get(NATIVE_BF16_ENV, "").strip()
    if override in ("0", "1"):
        return override == "1"
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def native_bf16(device: torch.device | str) -> bool:
    """True where bf16 arithmetic is native: CUDA GPUs with bf16 support, and `cpu_native_bf16()` CPUs."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return cpu_native_bf16()
    return False


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(device: torch.device | str | None = "auto") -> torch.device:
    """'auto' (or None) picks CUDA, then Apple's MPS, then the CPU; a named device must exist."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise IecastError(f"unknown device {device!r}; expected auto, cpu, cuda, cuda:N or mps") from exc
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise IecastError(f"device {device!r} asked for, but this torch build or machine has no CUDA GPU; "
                              f"use --device cpu (or auto)")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise IecastError(f"device {device!r} asked for, but only {torch.cuda.device_count()} CUDA GPU(s) are visible")
    elif resolved.type == "mps" and not _mps_available():
        raise IecastError(f"device {device!r} asked for, but MPS is not available here; use --device cpu (or auto)")
    elif resolved.type not in ("cpu", "cuda", "mps"):
        raise IecastError(f"unsupported device {device!r}; expected auto, cpu, cuda, cuda:N or mps")
    return resolved
