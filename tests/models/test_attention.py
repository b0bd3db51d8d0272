"""StyleAttention (SDPA, scale 1) equals the naive softmax(F^T G) form of SPEC.md and takes
the memory-efficient kernel (q, k, v contiguous in their last dimension)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from iecast.models.transform import StyleAttention


def naive_mvn(x: torch.Tensor) -> torch.Tensor:
    n, c = x.shape[:2]
    flat = x.reshape(n, c, -1)
    mean = flat.mean(dim=2, keepdim=True)
    std = (flat.var(dim=2, keepdim=True) + 1e-5).sqrt()
    return ((flat - mean) / std).reshape(x.shape)


def naive_style_attention(block: StyleAttention, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """out = out_conv(H softmax(F^T G)^T) + Fc, no 1/sqrt(d), written from the spec."""
    n, c, h, w = content.shape
    queries = block.f(naive_mvn(content)).reshape(n, c, -1)      # F: (n, c, N)
    keys = block.g(naive_mvn(style)).reshape(style.shape[0], c, -1)  # G: (n, c, M)
    values = block.h(style).reshape(style.shape[0], c, -1)          # H: (n, c, M)
    keys, values = keys.expand(n, -1, -1), values.expand(n, -1, -1)
    attention = torch.softmax(queries.transpose(1, 2) @ keys, dim=-1)  # (n, N, M), rows over style
    mixed = (values @ attention.transpose(1, 2)).reshape(n, c, h, w)
    return block.out_conv(mixed) + content


@pytest.mark.parametrize("content_hw, style_hw, batch, style_batch", [
    ((7, 5), (6, 9), 2, 2),
    ((3, 11), (13, 4), 1, 1),
    ((5, 6), (4, 3), 3, 1),  # one style broadcast to several contents
])
def test_style_attention_equals_naive_form_float64(content_hw, style_hw, batch, style_batch):
    torch.manual_seed(3)
    block = StyleAttention(24).double()
    content = torch.randn(batch, 24, *content_hw, dtype=torch.float64) * 3
    style = torch.randn(style_batch, 24, *style_hw, dtype=torch.float64) * 3
    with torch.no_grad():
        ours = block(content, style)
        expected = naive_style_attention(block, content, style)
        # the split API (style prepared once) gives the same
        prepared = block.attend(content, *block.style_keys_values(style))
    assert ours.shape == content.shape
    assert (ours - expected).abs().max().item() < 1e-10
    assert torch.equal(prepared, ours)


def test_no_inverse_sqrt_d_scaling():
    """Sharpening the queries by sqrt(d) in the naive form must not reproduce our output,
    while the unscaled form does: the block uses scale = 1."""
    torch.manual_seed(4)
    block = StyleAttention(16).double()
    content, style = torch.randn(1, 16, 4, 5, dtype=torch.float64), torch.randn(1, 16, 3, 3, dtype=torch.float64)
    with torch.no_grad():
        ours = block(content, style)
        expected = naive_style_attention(block, content, style)
        block.f.weight /= 4.0  # = dividing F^T G by sqrt(16)
        block.f.bias /= 4.0
        scaled = naive_style_attention(block, content, style)
    assert (ours - expected).abs().max().item() < 1e-10
    assert (ours - scaled).abs().max().item() > 1e-3


def test_style_attention_float32_matches_naive_at_512_channels():
    torch.manual_seed(5)
    block = StyleAttention(512)
    content, style = torch.randn(1, 512, 12, 10), torch.randn(1, 512, 9, 14)
    with torch.no_grad():
        ours, expected = block(content, style), naive_style_attention(block, content, style)
    assert (ours - expected).abs().max().item() < 1e-4 * expected.abs().max().item()


def test_sdpa_gets_last_dim_contiguous_inputs_and_the_flash_kernel(monkeypatch):
    """The memory-efficient CPU kernel needs stride 1 in the last dimension; otherwise SDPA
    silently materialises the attention matrix (see benchmarks/attention_memory.py)."""
    seen = []
    real = F.scaled_dot_product_attention

    def recording(q, k, v, *args, **kwargs):
        seen.append((q.shape, k.shape, v.shape, q.stride(-1), k.stride(-1), v.stride(-1), kwargs.get("scale")))
        return real(q, k, v, *args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", recording)
    block = StyleAttention(32)
    content, style = torch.randn(2, 32, 6, 7), torch.randn(1, 32, 5, 4)
    with torch.no_grad(), torch.autograd.profiler.profile(use_kineto=False) as prof:
        block(content, style)
    ((q_shape, k_shape, v_shape, *strides, scale),) = seen
    assert q_shape == (2, 1, 42, 32) and k_shape == v_shape == (2, 1, 20, 32)
    assert strides == [1, 1, 1]
    assert scale == 1.0
    ops = {event.key for event in prof.key_averages()}
    assert any("flash_attention" in op for op in ops), sorted(ops)
    assert "aten::softmax" not in ops and "aten::_softmax" not in ops
