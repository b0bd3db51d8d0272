"""A new transform kind is one class plus one registry line: the stylizer (tiled or not),
training config, model files and the plain network all take it without other changes."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from iecast.training.config import build_config
from iecast.models.functional import mean_std
from iecast.models.network import StyleTransferNetwork
from iecast.models.transform import TRANSFORMS, FeatureTransform, SANetTransform, build_transform, register_transform
from iecast.inference.stylizer import Stylizer, pad_to_multiple
from iecast.weights import load_encoder, load_stylizer, save_stylizer

from reference import small_init_

ENCODER = "vgg16-imagenet-offline-normalised"


class MeanShift(FeatureTransform):
    """Test transform: relu4_1 with the style's channel means, then a 3x3 conv head (halo 1)."""

    kind = "test-mean-shift"
    taps = ("relu4_1",)
    head_convs = 1

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(512, 512, 3)

    def prepare_style(self, style_feats):
        return {"mean": mean_std(style_feats["relu4_1"])[0]}

    def mix(self, content_feats, weighted_styles, chunk=None):
        c = content_feats["relu4_1"].float()
        shifted = c - mean_std(c)[0]
        return sum(w * (shifted + prepared["mean"].float()) for w, prepared in weighted_styles)

    def head(self, mixed):
        return self.conv(F.pad(mixed.to(self.conv.weight.dtype), (1, 1, 1, 1), mode="reflect"))


@pytest.fixture
def registered():
    register_transform(MeanShift)  # the one registry line a new kind needs
    yield MeanShift.kind
    del TRANSFORMS[MeanShift.kind]


def network_with(kind: str) -> StyleTransferNetwork:
    torch.manual_seed(0)
    network = StyleTransferNetwork(load_encoder(ENCODER), build_transform(kind)).eval()
    small_init_(network.decoder)
    small_init_(network.transform)
    return network


def test_new_kind_runs_everywhere(registered, tmp_path):
    network = network_with(registered)
    assert network.needed_tap == "relu4_1"
    g = torch.Generator().manual_seed(3)
    content, style = torch.rand(1, 3, 80, 112, generator=g), torch.rand(1, 3, 32, 32, generator=g)
    stylizer = Stylizer(network, device="cpu", precision="fp32")
    assert stylizer.taps == ("relu4_1",)
    whole = stylizer.stylize(content, style, 0.7, tile=None)
    tiled = stylizer.stylize(content, style, 0.7, tile=64)  # the head's halo comes from head_convs
    assert (whole - tiled).abs().max() < 1 / 255
    with torch.no_grad():  # the plain network (training and export's forward) gives the same image
        padded, (h, w) = pad_to_multiple(content)
        plain = network(padded, style, alpha=0.7)[..., :h, :w].clamp(0, 1)
    assert (whole - plain).abs().max() < 1e-4 and whole.std() > 0
    path = save_stylizer(tmp_path / "m.safetensors", network, ENCODER)
    loaded = load_stylizer(path)
    assert isinstance(loaded.transform, MeanShift)
    assert torch.equal(Stylizer(loaded, device="cpu", precision="fp32").stylize(content, style, 0.7), whole)
    assert build_config("cpu-small", overrides={"transform": registered, "content": ["a"], "style": ["b"]}).transform == registered


def test_unknown_kind_is_one_line():
    with pytest.raises(ValueError, match="unknown transform 'test-mean-shift'"):
        build_transform("test-mean-shift")


def test_sanet_mix_in_bands_equals_whole_maps():
    """The chunked attention (inference) equals the unchunked one (training, export) exactly in
    float64: bands only split the content rows; the normalisation is over the whole maps."""
    torch.manual_seed(0)
    transform = SANetTransform(channels=32).double()
    feats = {"relu4_1": torch.randn(1, 32, 10, 14, dtype=torch.float64),
             "relu5_1": torch.randn(1, 32, 5, 7, dtype=torch.float64)}
    style = transform.prepare_style({"relu4_1": torch.randn(1, 32, 6, 6, dtype=torch.float64),
                                     "relu5_1": torch.randn(1, 32, 3, 3, dtype=torch.float64)})
    weight_map = torch.rand(1, 1, 10, 14, dtype=torch.float64)
    pairs = [(weight_map, style), (1 - weight_map, style)]
    whole = transform.mix(feats, pairs, None)
    banded = transform.mix(feats, pairs, chunk=28)  # 2 rows per band
    assert whole.dtype == banded.dtype == torch.float64
    torch.testing.assert_close(banded, whole, rtol=0, atol=1e-12)
    cut = transform.mix(feats, pairs, chunk=12)  # a row (14) is over half the chunk: 2 x 6 positions per band
    torch.testing.assert_close(cut, whole, rtol=0, atol=1e-12)
    # the weights sum to 1 and the head is linear: blending before it equals T(c, s)
    torch.testing.assert_close(transform.head(whole), transform.apply_style(feats, style), rtol=0, atol=1e-10)
