"""`keep_freed_memory`: memory freed by one pass of large tensors is reused by the next pass instead
of being unmapped and faulted in again, and the process stops growing once a pass has run. Each case
runs in its own interpreter (the setting is process-wide)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from iecast.hardware import KEEP_FREED_ENV, has_glibc, keep_freed_memory

pytestmark = pytest.mark.skipif(not has_glibc(), reason="mallopt is glibc's")

# Passes of a chain of 64-96 MB tensors of changing sizes, each freed when the next exists (as in a
# network's forward pass); prints each pass's minor page faults and the peak RSS after it.
SCRIPT = """
import json, resource, sys, torch
from iecast.hardware import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory(1024)  # above every block here
passes = []
for _ in range(5):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t = torch.ones(16 << 20)
    for k in range(4):
        t = torch.cat([t[: (8 << 20) * (1 + k % 2)], t])[: (16 << 20) + k * (2 << 20)] * 2
    del t
    usage = resource.getrusage(resource.RUSAGE_SELF)
    passes.append((usage.ru_minflt - before, usage.ru_maxrss))
print(json.dumps(passes))
"""


def run_passes(mode: str) -> list[tuple[int, int]]:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def test_freed_memory_is_reused_only_when_asked():
    default, keep = run_passes("default"), run_passes("keep")
    pages_per_pass = default[-1][0]
    assert pages_per_pass > 100_000  # glibc maps and faults every large tensor afresh: about 0.8 GB a pass
    assert keep[-1][0] < pages_per_pass // 10  # kept: the last pass mostly reuses the earlier passes' pages
    assert keep[-1][1] == keep[2][1]  # and the process no longer grows


def test_zero_turns_it_off(monkeypatch):
    monkeypatch.setenv(KEEP_FREED_ENV, "0")
    assert keep_freed_memory() is False  # returns before touching the allocator


def test_a_bad_setting_is_one_line(monkeypatch, capsys, tmp_path):
    from iecast.cli import main

    monkeypatch.setenv(KEEP_FREED_ENV, "lots")
    assert main(["export", str(tmp_path / "missing.pt"), "-o", str(tmp_path / "out.safetensors")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and KEEP_FREED_ENV in err[0]
    assert not (tmp_path / "out.safetensors").exists()
