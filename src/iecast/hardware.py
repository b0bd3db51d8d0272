"""What the machine offers: which device to use and whether it computes bf16 natively.

One home for these decisions, shared by inference (`Stylizer`) and training (`TrainConfig`).
"""
from __future__ import annotations

import ctypes
import os
import platform

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


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers (malloc.h)
KEEP_FREED_ENV = "IECAST_KEEP_FREED_MB"  # keep blocks up to this many MB for reuse in every command; 0: none
KEEP_FREED_MB = 72  # covers every tensor of a 512x512 fp32 call (64 MiB); larger ones are mapped and returned as before


def has_glibc() -> bool:
    """True on Linux with glibc, whose `mallopt` `keep_freed_memory` uses."""
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def keep_freed_mb_requested() -> int | None:
    """$IECAST_KEEP_FREED_MB as a number of MB, or None where it is not set."""
    text = os.environ.get(KEEP_FREED_ENV, "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise IecastError(f"{KEEP_FREED_ENV} must be a whole number of MB (0 turns it off); got {text!r}")
    return int(text)


def keep_freed_memory(limit_mb: int | None = None) -> bool:
    """Ask glibc's malloc to serve blocks up to `limit_mb` (default: $IECAST_KEEP_FREED_MB, else
    KEEP_FREED_MB) from its heap and keep what is freed for the next call, instead of mapping fresh
    pages for each such tensor and unmapping them after.

    Each stylization then reuses the last one's memory rather than page-faulting it in again. The
    heap stays at its high-water mark, a little above glibc's own peak. Process-wide, so the CLI
    calls it, not the library. Returns False where nothing changed: 0 MB, or not glibc.
    """
    if limit_mb is None:
        requested = keep_freed_mb_requested()
        limit_mb = KEEP_FREED_MB if requested is None else requested
    if limit_mb <= 0 or not has_glibc():
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    limit = limit_mb << 20
    trim = min(2 * limit, 2 ** 31 - 1)  # free memory kept at the heap's top; an int parameter
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, limit)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, trim))
