"""Loading the authors' three files must reproduce their model exactly (SPEC.md)."""
from __future__ import annotations

import pytest
import torch

from iecast import IecastError, Stylizer
from reference import (ReferenceTransformer, reference_decoder, reference_encode, reference_vgg_normalised,
                       small_init_)


@pytest.fixture(scope="module")
def official_files(tmp_path_factory):
    torch.manual_seed(1)
    root = tmp_path_factory.mktemp("official")
    vgg, decoder, transformer = reference_vgg_normalised(), reference_decoder(), ReferenceTransformer()
    for m in (vgg, decoder, transformer):
        small_init_(m)
    with torch.no_grad():  # the authors' 1x1 input conv: RGB -> BGR x255 - mean, scaled down for O(1) activations
        vgg[0].weight.copy_(torch.eye(3).flip(1).view(3, 3, 1, 1))
        vgg[0].bias.copy_(torch.tensor([-0.4, -0.45, -0.48]))
    paths = {"vgg": root / "vgg_normalised.pth", "decoder": root / "decoder_iter_160000.pth",
             "transformer": root / "transformer_iter_160000.pth"}
    torch.save(vgg.state_dict(), paths["vgg"])
    torch.save(decoder.state_dict(), paths["decoder"])
    torch.save(transformer.state_dict(), paths["transformer"])
    return paths, (vgg.eval(), decoder.eval(), transformer.eval())


def reference_forward(models, content, style):
    vgg, decoder, transformer = models
    c, s = reference_encode(vgg, content), reference_encode(vgg, style)
    return decoder(transformer(c[3], s[3], c[4], s[4]))


def test_official_keys_are_the_release_layout(official_files):
    paths, _ = official_files
    dec = torch.load(paths["decoder"], weights_only=True)
    assert sorted({int(k.split(".")[0]) for k in dec}) == [1, 5, 8, 11, 14, 18, 21, 25, 28]
    tr = torch.load(paths["transformer"], weights_only=True)
    assert "sanet4_1.out_conv.weight" in tr and "merge_conv.bias" in tr
    vgg = torch.load(paths["vgg"], weights_only=True)
    assert sorted({int(k.split(".")[0]) for k in vgg}) == [0, 2, 5, 9, 12, 16, 19, 22, 25, 29, 32, 35, 38, 42]


@pytest.mark.parametrize("size", [(256, 256), (300, 200)])
def test_from_official_matches_reference(official_files, size):
    paths, models = official_files
    stylizer = Stylizer.from_official(**{k: str(v) for k, v in paths.items()}, precision="fp32")
    content = torch.rand(1, 3, *size)
    style = torch.rand(1, 3, 192, 160)
    with torch.no_grad():
        expected = reference_forward(models, content, style)
        ours = stylizer.network(content, style)
        # float64 isolates structure from float32 rounding (which differs by kernel order)
        expected64 = reference_forward([m.double() for m in models], content.double(), style.double())
        ours64 = stylizer.network.double()(content.double(), style.double())
        for m in models:
            m.float()
    assert ours.shape == expected.shape == (1, 3, 8 * -(-size[0] // 8), 8 * -(-size[1] // 8))
    assert expected.abs().mean() > 1e-3  # a meaningful, non-degenerate output
    assert (ours64 - expected64).abs().max().item() < 1e-5
    assert (ours - expected).abs().max().item() < 1e-4


def test_stylize_returns_input_size_and_matches_reference(official_files):
    paths, models = official_files
    stylizer = Stylizer.from_official(**{k: str(v) for k, v in paths.items()}, precision="fp32")
    content, style = torch.rand(1, 3, 256, 256), torch.rand(1, 3, 128, 128)
    out = stylizer.stylize(content, style)
    with torch.no_grad():
        expected = reference_forward(models, content, style).clamp(0, 1)
    assert out.shape == content.shape
    assert (out - expected).abs().max().item() < 1e-4  # float32 path; the float64 test above is exact
    odd = stylizer.stylize(torch.rand(1, 3, 301, 203), style)
    assert odd.shape == (1, 3, 301, 203)


def test_official_rejects_bad_files(official_files, tmp_path):
    paths, _ = official_files
    args = {k: str(v) for k, v in paths.items()}
    truncated = tmp_path / "decoder.pth"
    truncated.write_bytes(paths["decoder"].read_bytes()[:1000])
    with pytest.raises(IecastError, match=r"decoder\.pth: not a readable PyTorch checkpoint"):
        Stylizer.from_official(**{**args, "decoder": str(truncated)})
    text = tmp_path / "notes.pth"
    text.write_text("hello")
    with pytest.raises(IecastError, match="notes.pth: not a readable"):
        Stylizer.from_official(**{**args, "transformer": str(text)})
    # transformer file given as decoder: wrong keys, named in one line
    with pytest.raises(IecastError, match=r"not a valid IEContraAST decoder: missing keys") as err:
        Stylizer.from_official(**{**args, "decoder": args["transformer"]})
    assert "\n" not in str(err.value)
    # a mis-shaped key
    state = torch.load(paths["transformer"], weights_only=True)
    state["merge_conv.weight"] = state["merge_conv.weight"][:, :256]
    bad = tmp_path / "transformer.pth"
    torch.save(state, bad)
    with pytest.raises(IecastError, match=r"mis-shaped.*merge_conv.weight"):
        Stylizer.from_official(**{**args, "transformer": str(bad)})
    with pytest.raises(IecastError, match="no such file"):
        Stylizer.from_official(**{**args, "vgg": str(tmp_path / "missing.pth")})
