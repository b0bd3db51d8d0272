"""Every loss against a brute-force loop written from SPEC.md, plus the properties it implies."""
from __future__ import annotations

import math

import pytest
import torch

from iecast.training.losses import (LossWeights, adversarial_loss, content_contrastive_loss, content_loss, contrastive_batch,
                           discriminator_loss, identity_feature_loss, identity_pixel_loss, lsgan_loss, pair_ids,
                           style_contrastive_loss, style_loss, total_generator_loss)
from iecast.models import StyleTransferNetwork, VGGEncoder
from iecast.models.transform import build_transform

TAP_NAMES = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
TAU = 0.2


# ----------------------------------------------------------------------------- brute force

def loop_mean_std(x: torch.Tensor, n: int, c: int) -> tuple[float, float]:
    """Mean and sqrt(unbiased variance + 1e-5) of one channel, by explicit sums."""
    values = x[n, c].flatten().tolist()
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var + 1e-5)


def loop_mse(a: list[float], b: list[float]) -> float:
    return sum((x - y) ** 2 for x, y in zip(a, b)) / len(a)


def loop_normalised(x: torch.Tensor) -> list[float]:
    out = []
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            mean, std = loop_mean_std(x, n, c)
            out += [(v - mean) / std for v in x[n, c].flatten().tolist()]
    return out


def loop_content_loss(out_feats, content_feats) -> float:
    return sum(loop_mse(loop_normalised(out_feats[t]), loop_normalised(content_feats[t])) for t in ("relu4_1", "relu5_1"))


def loop_style_loss(out_feats, style_feats) -> float:
    total = 0.0
    for t in TAP_NAMES:
        a, b = out_feats[t], style_feats[t]
        stats_a = [loop_mean_std(a, n, c) for n in range(a.shape[0]) for c in range(a.shape[1])]
        stats_b = [loop_mean_std(b, n, c) for n in range(b.shape[0]) for c in range(b.shape[1])]
        total += loop_mse([m for m, _ in stats_a], [m for m, _ in stats_b])
        total += loop_mse([s for _, s in stats_a], [s for _, s in stats_b])
    return total


def batch_pairs(h: int) -> list[tuple[int, int]]:
    """(style, content) of each output: first half (s_i, c_i), second half (s_i, c_{i+1 mod h})."""
    return [(i, i) for i in range(h)] + [(i, (i + 1) % h) for i in range(h)]


def loop_contrastive(embeddings: torch.Tensor, h: int, shared: str) -> float:
    """Sum over anchors of -log(e^{r.p/tau} / (e^{r.p/tau} + sum_neg e^{r.n/tau}))."""
    pairs = batch_pairs(h)
    e = embeddings.double()
    total = 0.0
    for r, (style_r, content_r) in enumerate(pairs):
        positives, negatives = [], []
        for q, (style_q, content_q) in enumerate(pairs):
            if q == r:
                continue
            same_style, same_content = style_q == style_r, content_q == content_r
            if (shared == "style" and same_style) or (shared == "content" and same_content):
                positives.append(q)
            elif not same_style and not same_content:
                negatives.append(q)
        assert len(positives) == 1 and len(negatives) == 2 * h - 3
        positive = math.exp(float(e[r] @ e[positives[0]]) / TAU)
        denominator = positive + sum(math.exp(float(e[r] @ e[q]) / TAU) for q in negatives)
        total += -math.log(positive / denominator)
    return total


def random_feats(n: int, sizes=((8, 6, 5), (8, 4, 3), (16, 3, 3), (16, 2, 3), (16, 2, 2)), shift: float = 0.0):
    return {t: torch.randn(n, c, hh, ww, dtype=torch.float64) * 2 + shift for t, (c, hh, ww) in zip(TAP_NAMES, sizes)}


# ----------------------------------------------------------------------------- against loops

@pytest.mark.parametrize("h", range(2, 9))
def test_contrastive_losses_match_brute_force(h):
    torch.manual_seed(h)
    style_emb = torch.nn.functional.normalize(torch.randn(2 * h, 128), dim=1)
    content_emb = torch.nn.functional.normalize(torch.randn(2 * h, 128), dim=1)
    ours_style = style_contrastive_loss(style_emb, h, temperature=TAU)
    ours_content = content_contrastive_loss(content_emb, h, temperature=TAU)
    assert ours_style.shape == ours_content.shape == ()
    assert ours_style.item() == pytest.approx(loop_contrastive(style_emb, h, "style"), rel=1e-5)
    assert ours_content.item() == pytest.approx(loop_contrastive(content_emb, h, "content"), rel=1e-5)


def test_contrastive_default_temperature_is_0_2():
    emb = torch.nn.functional.normalize(torch.randn(8, 16), dim=1)
    assert style_contrastive_loss(emb, 4).item() == pytest.approx(loop_contrastive(emb, 4, "style"), rel=1e-5)


def test_contrastive_loss_closed_form_for_one_hot_styles():
    """One-hot embeddings per style: r.p = 1 and r.n = 0, so every anchor's term is
    log(1 + (2h - 3) e^{-1/tau}). For the content loss every dot product is 0: log(2h - 2) each."""
    h = 4
    style_ids = torch.tensor([s for s, _ in batch_pairs(h)])
    one_hot = torch.eye(h)[style_ids]
    expected = 2 * h * math.log(1 + (2 * h - 3) * math.exp(-1 / TAU))
    assert style_contrastive_loss(one_hot, h).item() == pytest.approx(expected, rel=1e-5)
    assert content_contrastive_loss(one_hot, h).item() == pytest.approx(2 * h * math.log(2 * h - 2), rel=1e-5)


@pytest.mark.parametrize("h", [2, 3, 6])
def test_batch_construction(h):
    contents = torch.arange(h).float().view(h, 1, 1, 1) + 100
    styles = torch.arange(h).float().view(h, 1, 1, 1) + 200
    batch_contents, batch_styles = contrastive_batch(contents, styles)
    got = [(int(s) - 200, int(c) - 100) for s, c in zip(batch_styles.flatten(), batch_contents.flatten())]
    assert got == batch_pairs(h)
    style_ids, content_ids = pair_ids(h)
    assert list(zip(style_ids.tolist(), content_ids.tolist())) == batch_pairs(h)


def test_pair_ids_rejects_h_below_2():
    with pytest.raises(ValueError):
        pair_ids(1)


def test_content_loss_matches_brute_force():
    out, content = random_feats(2), random_feats(2, shift=0.5)
    assert content_loss(out, content).item() == pytest.approx(loop_content_loss(out, content), rel=1e-10)


def test_style_loss_matches_brute_force():
    out, style = random_feats(2), random_feats(2, shift=1.0)
    assert style_loss(out, style).item() == pytest.approx(loop_style_loss(out, style), rel=1e-10)


def test_identity_losses_match_brute_force():
    i_cc, c, i_ss, s = (torch.randn(2, 3, 5, 4, dtype=torch.float64) for _ in range(4))
    expected = loop_mse(i_cc.flatten().tolist(), c.flatten().tolist()) + loop_mse(i_ss.flatten().tolist(), s.flatten().tolist())
    assert identity_pixel_loss(i_cc, c, i_ss, s).item() == pytest.approx(expected, rel=1e-12)

    feats = [random_feats(2, shift=k) for k in range(4)]
    expected = sum(loop_mse(feats[0][t].flatten().tolist(), feats[1][t].flatten().tolist())
                   + loop_mse(feats[2][t].flatten().tolist(), feats[3][t].flatten().tolist()) for t in TAP_NAMES)
    assert identity_feature_loss(*feats).item() == pytest.approx(expected, rel=1e-12)


def test_lsgan_losses_match_brute_force():
    real = [torch.randn(2, 1, 7, 5), torch.randn(2, 1, 4, 3), torch.randn(2, 1, 2, 2)]
    fake = [torch.randn_like(x) for x in real]

    def loop_lsgan(scores, target):
        return sum(sum((v - target) ** 2 for v in s.flatten().tolist()) / s.numel() for s in scores)

    assert lsgan_loss(real, 1.0).item() == pytest.approx(loop_lsgan(real, 1.0), rel=1e-6)
    assert adversarial_loss(fake).item() == pytest.approx(loop_lsgan(fake, 1.0), rel=1e-6)
    assert discriminator_loss(real, fake).item() == pytest.approx(loop_lsgan(real, 1.0) + loop_lsgan(fake, 0.0), rel=1e-6)


def test_total_loss_uses_the_release_weights():
    terms = {name: torch.tensor(float(value)) for name, value in zip(
        ("content", "style", "identity_pixel", "identity_feature", "contrastive_content", "contrastive_style", "adversarial"),
        (1.5, 2.0, 0.25, 3.0, 7.0, 11.0, 0.5))}
    expected = 1 * 1.5 + 1 * 2.0 + 50 * 0.25 + 1 * 3.0 + 0.3 * 7.0 + 0.3 * 11.0 + 5 * 0.5
    assert total_generator_loss(terms).item() == pytest.approx(expected, rel=1e-6)
    assert LossWeights() == LossWeights(content=1, style=1, identity_pixel=50, identity_feature=1,
                                        contrastive_content=0.3, contrastive_style=0.3, adversarial=5)
    custom = LossWeights(content=2.0, adversarial=0.0)
    partial = {k: terms[k] for k in ("content", "adversarial", "style")}
    assert total_generator_loss(partial, custom).item() == pytest.approx(2 * 1.5 + 1 * 2.0, rel=1e-6)


# ----------------------------------------------------------------------------- properties

def test_style_loss_is_zero_for_identical_inputs():
    feats = random_feats(3)
    assert style_loss(feats, {k: v.clone() for k, v in feats.items()}).item() == 0.0


def test_content_loss_invariant_to_positive_channel_affine():
    out, content = random_feats(2), random_feats(2, shift=0.3)
    scaled = {}
    for t, x in out.items():
        scale = torch.rand(1, x.shape[1], 1, 1, dtype=torch.float64) * 2.5 + 0.5
        offset = torch.randn(1, x.shape[1], 1, 1, dtype=torch.float64) * 10
        scaled[t] = x * scale + offset
    base = content_loss(out, content).item()
    assert base > 0.1
    assert content_loss(scaled, content).item() == pytest.approx(base, rel=1e-5)
    # a negative scale flips the normalised map, so the loss changes
    flipped = {t: -x for t, x in out.items()}
    assert content_loss(flipped, content).item() != pytest.approx(base, rel=1e-2)


def test_gradients_reach_decoder_and_transform_but_never_the_encoder():
    torch.manual_seed(0)
    encoder = VGGEncoder("vgg16")
    network = StyleTransferNetwork(encoder, build_transform("sanet"))
    network.train()
    assert not encoder.training  # frozen: stays in eval mode
    assert all(not p.requires_grad for p in encoder.parameters())

    content = torch.rand(2, 3, 32, 32, requires_grad=True)
    style = torch.rand(2, 3, 32, 32)
    output = network(content, style)
    out_feats = encoder(output)
    content_feats, style_feats = encoder(content), encoder(style)
    identity = network(content, content)
    terms = {
        "content": content_loss(out_feats, content_feats),
        "style": style_loss(out_feats, style_feats),
        "identity_pixel": identity_pixel_loss(identity, content, identity, content),
    }
    total_generator_loss(terms).backward()

    for name, p in list(network.decoder.named_parameters()) + list(network.transform.named_parameters()):
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    for name, p in encoder.named_parameters():
        assert p.grad is None, name
    assert all(b.grad is None for b in encoder.buffers())
    # the image does get gradients, and they flow through the frozen encoder
    assert content.grad is not None and content.grad.abs().sum() > 0


def test_image_gradient_flows_through_the_encoder_alone():
    encoder = VGGEncoder("vgg16")
    image = torch.rand(1, 3, 24, 24, requires_grad=True)
    feats = encoder(image)
    sum(f.sum() for f in feats.values()).backward()
    assert image.grad is not None and image.grad.abs().sum() > 0
    assert all(p.grad is None for p in encoder.parameters())
