"""Training: config validation, data handling, exact resume, DDP, non-finite stop, export."""
from __future__ import annotations

import dataclasses
import json
import os
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from iecast import IecastError, Stylizer
from iecast.training.config import build_config, parse_override
from iecast.training.data import PairStream, check_images, list_images
from iecast.training.checkpoints import export_checkpoint, list_checkpoints, read_checkpoint
from iecast.training.loop import train
from iecast.weights import DEFAULT_ENCODER, read_stylizer


def _write_images(folder: Path, n: int, size=(150, 140), seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    for i in range(n):
        arr = (torch.rand(size[1], size[0], 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(arr).save(folder / f"img{i}.png")
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return _write_images(root / "content", 3), _write_images(root / "style", 3, seed=1)


def tiny_config(data, out: Path, **overrides):
    content, style = data
    settings = dict(content=[str(content)], style=[str(style)], out_dir=str(out), h=2, crop=128, resize=128,
                    iterations=6, checkpoint_every=3, log_every=1, image_every=3, workers=0, tensorboard=False,
                    precision="32-true")  # pinned: cpu-small's `auto` would be bf16-mixed on AMX CPUs
    settings.update(overrides)
    return build_config("cpu-small", overrides=settings)


def all_parameters(out_dir: Path, iteration: int) -> dict[str, torch.Tensor]:
    state = read_checkpoint(out_dir / "checkpoints" / f"ckpt_{iteration:08d}.pt")
    return {f"{part}.{k}": v for part in ("decoder", "transform", "style_head", "content_head", "discriminator")
            for k, v in state[part].items()}


def test_exact_resume_is_bit_identical(data, tmp_path):
    straight = tiny_config(data, tmp_path / "straight", checkpoint_every=6)
    train(straight)
    first = tiny_config(data, tmp_path / "split", iterations=3)
    assert train(first).iteration == 3
    second = tiny_config(data, tmp_path / "split", resume="auto")
    result = train(second)
    assert result.iteration == 6 and not result.interrupted
    a, b = all_parameters(tmp_path / "straight", 6), all_parameters(tmp_path / "split", 6)
    assert a.keys() == b.keys() and len(a) > 50
    for key in a:
        assert torch.equal(a[key], b[key]), key
    sa = read_checkpoint(tmp_path / "straight" / "checkpoints" / "ckpt_00000006.pt")
    sb = read_checkpoint(tmp_path / "split" / "checkpoints" / "ckpt_00000006.pt")
    for opt in ("g_opt", "d_opt"):
        for k, st in sa[opt]["state"].items():
            assert torch.equal(st["exp_avg"], sb[opt]["state"][k]["exp_avg"])
    # the run logged every term, as JSONL, and saved image grids
    lines = [json.loads(l) for l in (tmp_path / "split" / "log.jsonl").read_text().splitlines()]
    terms = [l for l in lines if "total" in l]
    assert [l["iteration"] for l in terms] == [1, 2, 3, 4, 5, 6]
    for key in ("content", "style", "identity_pixel", "identity_feature", "contrastive_content",
                "contrastive_style", "adversarial", "discriminator", "lr", "it_per_s"):
        assert key in terms[-1]
    assert terms[1]["lr"] == pytest.approx(1e-4 / (1 + 5e-5 * 1))
    grid = Image.open(tmp_path / "split" / "images" / "iter_00000006.png")
    assert grid.size == (3 * 128, 2 * 128)


def test_resume_when_setup_moves_or_casts_the_parameters(data, tmp_path):
    """Optimiser state must be restored after Fabric places the parameters: on a GPU they move
    to CUDA, here (`bf16-true`) they become bfloat16, and Adam's moments have to follow."""
    settings = dict(precision="bf16-true", crop=32, resize=32, loss_adversarial=0, iterations=1, checkpoint_every=1)
    train(tiny_config(data, tmp_path / "run", **settings))
    result = train(tiny_config(data, tmp_path / "run", **{**settings, "iterations": 2}, resume="auto"))
    assert result.iteration == 2 and not result.interrupted
    state = read_checkpoint(tmp_path / "run" / "checkpoints" / "ckpt_00000002.pt")
    moments = [st["exp_avg"] for st in state["g_opt"]["state"].values()]
    assert moments and all(m.dtype == torch.bfloat16 and torch.isfinite(m.float()).all() for m in moments)
    assert all(v.dtype == torch.bfloat16 for v in state["decoder"].values())


def test_export_loads_in_stylizer_and_warm_start(data, tmp_path):
    config = tiny_config(data, tmp_path / "run", iterations=1, checkpoint_every=1)
    ckpt = train(config).checkpoint
    out = export_checkpoint(ckpt, tmp_path / "model.safetensors", fp16=True, with_training_state=True)
    stylizer = Stylizer.from_pretrained(out)
    state = read_checkpoint(ckpt)
    w = stylizer.network.decoder.state_dict()["layers.1.weight"]
    assert torch.equal(w, state["decoder"]["layers.1.weight"].half().float())
    assert (tmp_path / "model.train.safetensors").is_file()
    umask = os.umask(0)
    os.umask(umask)
    for exported in (out, tmp_path / "model.train.safetensors"):  # readable like any new file, not 0600
        assert exported.stat().st_mode & 0o777 == 0o666 & ~umask
    img = stylizer.stylize(torch.rand(1, 3, 40, 56), torch.rand(1, 3, 32, 32))
    assert img.shape == (1, 3, 40, 56)
    # warm start takes the exported decoder, transform and discriminator
    warm = tiny_config(data, tmp_path / "warm", iterations=1, init_from=str(out), lr=0.0, d_lr=0.0)
    train(warm)
    after = read_checkpoint(list_checkpoints(tmp_path / "warm")[-1])
    assert torch.equal(after["decoder"]["layers.1.weight"], state["decoder"]["layers.1.weight"].half().float())
    assert torch.equal(after["discriminator"]["scales.0.layers.0.weight"],
                       state["discriminator"]["scales.0.layers.0.weight"].half().float())
    # the export counts the warm start's iterations, also after the warm run is resumed
    train(dataclasses.replace(warm, iterations=2, resume="auto"))
    resumed = export_checkpoint(list_checkpoints(tmp_path / "warm")[-1], tmp_path / "warm.safetensors")
    assert json.loads(read_stylizer(resumed)[1]["config"])["iterations_trained"] == 1 + 2


def test_non_finite_loss_stops_and_keeps_last_checkpoint(data, tmp_path, monkeypatch):
    import iecast.training.model as train_module

    real = train_module.style_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        value = real(*args, **kwargs)
        return value * float("nan") if calls["n"] >= 3 else value

    monkeypatch.setattr(train_module, "style_loss", poisoned)
    config = tiny_config(data, tmp_path / "nan", iterations=5, checkpoint_every=2)
    with pytest.raises(IecastError, match=r"non-finite loss at iteration 2 \(style, total\).*ckpt_00000002.pt"):
        train(config)
    ckpts = list_checkpoints(tmp_path / "nan")
    assert [p.name for p in ckpts] == ["ckpt_00000002.pt"]
    state = read_checkpoint(ckpts[0])
    assert all(torch.isfinite(v).all() for v in state["decoder"].values())


def test_ddp_two_processes_stay_in_sync(data, tmp_path):
    config = tiny_config(data, tmp_path / "ddp", iterations=2, checkpoint_every=2, accelerator="cpu", devices=2,
                         strategy="ddp_spawn")
    train(config)
    ranks = [json.loads((tmp_path / "ddp" / f"final_rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["iteration"] == ranks[1]["iteration"] == 2
    assert ranks[0]["parameters_sha256"] == ranks[1]["parameters_sha256"]
    lines = [json.loads(l) for l in (tmp_path / "ddp" / "log.jsonl").read_text().splitlines()]
    assert lines[0]["world_size"] == 2
    assert all(torch.isfinite(torch.tensor(l["total"])) for l in lines if "total" in l)


def test_config_errors_are_one_line(tmp_path, data):
    bad = tmp_path / "bad.toml"
    bad.write_text("h = 4\nlearning_rate = 0.1\n")
    with pytest.raises(IecastError, match="unknown setting 'learning_rate'"):
        build_config(file=bad, overrides={"content": ["x"], "style": ["y"]})
    bad.write_text('h = "four"\n')
    with pytest.raises(IecastError, match="h must be int"):
        build_config(file=bad)
    with pytest.raises(IecastError, match="h must be >= 2"):
        build_config(overrides={"h": 1, "content": ["x"], "style": ["y"]})
    with pytest.raises(IecastError, match="unknown preset"):
        build_config("fast")
    with pytest.raises(IecastError, match="decoder_init must be"):
        build_config(overrides={"decoder_init": "xavier", "content": ["x"], "style": ["y"]})
    good = tmp_path / "good.yaml"
    good.write_text("train:\n  h: 3\n  crop: 128\n  content: [a]\n  style: [b]\n")
    config = build_config("paper", good, dict([parse_override("loss_adversarial=0"), parse_override("channels_last=true")]))
    assert (config.h, config.crop, config.losses.adversarial, config.channels_last, config.resize) == (3, 128, 0.0, True, 512)


def test_data_errors_and_odd_images(tmp_path):
    with pytest.raises(IecastError, match="no such folder"):
        list_images([str(tmp_path / "missing")])
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "broken.jpg").write_bytes(b"not an image")
    (empty / "zero.png").write_bytes(b"")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(IecastError, match="no readable content images"):
            check_images(list_images([str(empty)]), "content")
    assert len([w for w in caught if "skipping unreadable" in str(w.message)]) == 2
    odd = tmp_path / "odd"
    odd.mkdir()
    Image.new("L", (50, 40), 128).save(odd / "gray.png")
    Image.new("RGBA", (60, 50), (10, 20, 30, 0)).save(odd / "rgba.png")
    Image.new("CMYK", (70, 60), (0, 255, 0, 0)).save(odd / "cmyk.jpg")
    Image.fromarray((torch.arange(64 * 48) % 65535).reshape(48, 64).numpy().astype("uint16")).save(odd / "deep.png")
    Image.new("P", (30, 30)).save(odd / "palette.png")
    files = check_images(list_images([str(odd)]), "style")
    assert len(files) == 5
    stream = PairStream(files, files, h=5, resize=64, crop=32, resize_mode="shorter-side")
    contents, styles, bad = stream[0]
    assert contents.shape == styles.shape == (5, 3, 32, 32) and bad == 0
    again = stream[0]
    assert torch.equal(again[0], contents)  # batches are a pure function of the iteration
    assert not torch.equal(stream[1][0], contents)


def test_resume_with_another_encoder_is_refused(data, tmp_path):
    config = tiny_config(data, tmp_path / "enc", iterations=1, checkpoint_every=1)
    ckpt = train(config).checkpoint
    before = ckpt.read_bytes()
    other = tiny_config(data, tmp_path / "enc", iterations=2, resume="auto", encoder="vgg16-imagenet-offline")
    with pytest.raises(IecastError, match=f"trained with encoder '{DEFAULT_ENCODER}'"):
        train(other)
    assert ckpt.read_bytes() == before and len(list_checkpoints(tmp_path / "enc")) == 1


def test_kaiming_decoder_init_keeps_activation_scale():
    """PyTorch's default init shrinks activations layer by layer (outputs ~0); the kaiming start
    keeps hidden activations at their input's scale and starts from a flat mid-grey output."""
    from iecast.models.decoder import Decoder

    torch.manual_seed(0)
    features = torch.rand(2, 512, 8, 8) * 2
    default, kaiming = Decoder(), Decoder().init_kaiming()
    with torch.no_grad():
        assert default(features).abs().max() < 0.1
        out = kaiming(features)
        hidden = kaiming.layers[:-2](features)  # everything before the last pad + conv
    assert out.shape == (2, 3, 64, 64)
    assert (out - 0.45).abs().max() < 0.05 and out.std() > 1e-4
    assert 0.2 < hidden.pow(2).mean().sqrt() / features.pow(2).mean().sqrt() < 5


def test_generator_terms_match_the_release_structure():
    """The trainer's batched forward (each distinct image encoded once; identity images decoded
    and encoded with the stylizations) gives the release's terms, where every image of the 2h
    pairs is encoded and the identity passes run over all 2h pairs (float64, random weights)."""
    from iecast.training.losses import (LossWeights, content_contrastive_loss, content_loss, identity_feature_loss,
                               identity_pixel_loss, pair_ids, style_contrastive_loss, style_loss)
    from iecast.models import VGGEncoder
    from iecast.training.model import IEContraASTModel

    torch.manual_seed(0)
    h = 3
    model = IEContraASTModel(VGGEncoder("vgg16"), "sanet", LossWeights()).double()
    contents, styles = torch.rand(h, 3, 64, 64, dtype=torch.float64), torch.rand(h, 3, 64, 64, dtype=torch.float64)
    cs, terms = model(contents, styles)

    enc, tr, dec = model.encoder, model.transform, model.decoder
    style_ids, content_ids = pair_ids(h)
    c, s = contents[content_ids], styles[style_ids]
    with torch.no_grad():
        c_feats, s_feats = enc(c), enc(s)
        expected_cs = dec(tr(c_feats, s_feats))
        cs_feats = enc(expected_cs)
        i_cc, i_ss = dec(tr(c_feats, c_feats)), dec(tr(s_feats, s_feats))
        expected = {
            "content": content_loss(cs_feats, c_feats), "style": style_loss(cs_feats, s_feats),
            "identity_pixel": identity_pixel_loss(i_cc, c, i_ss, s),
            "identity_feature": identity_feature_loss(enc(i_cc), c_feats, enc(i_ss), s_feats),
            "contrastive_style": style_contrastive_loss(model.style_head(cs_feats["relu3_1"]), h),
            "contrastive_content": content_contrastive_loss(model.content_head(cs_feats["relu4_1"]), h),
        }
    assert torch.allclose(cs, expected_cs, rtol=1e-10, atol=1e-12)
    assert set(terms) == set(expected)
    for name, value in expected.items():
        assert terms[name].item() == pytest.approx(value.item(), rel=1e-9), name


def test_discriminator_step_is_the_two_pass_update_and_the_g_side_leaves_d_alone():
    from copy import deepcopy

    from iecast.training.losses import discriminator_loss
    from iecast.models import MultiScaleDiscriminator
    from iecast.training.model import adversarial_term, discriminator_step

    torch.manual_seed(0)
    disc = MultiScaleDiscriminator().double()
    twin = deepcopy(disc)
    styles = torch.rand(2, 3, 128, 128, dtype=torch.float64)
    stylizations = torch.rand(4, 3, 128, 128, dtype=torch.float64, requires_grad=True)

    loss = discriminator_step(disc, torch.optim.SGD(disc.parameters(), lr=0.1), styles, stylizations)
    expected = discriminator_loss(twin(styles), twin(stylizations.detach()))
    expected.backward()
    with torch.no_grad():
        for p in twin.parameters():
            p -= 0.1 * p.grad
    assert loss.item() == pytest.approx(expected.item(), rel=1e-10)
    for ours, theirs in zip(disc.parameters(), twin.parameters()):
        assert torch.allclose(ours, theirs, rtol=1e-10, atol=1e-12)
    assert stylizations.grad is None  # the D step never reaches the generator

    d_grads = [p.grad.clone() for p in disc.parameters()]
    adversarial_term(disc, stylizations).backward()
    assert stylizations.grad is not None and stylizations.grad.abs().sum() > 0
    assert all(torch.equal(p.grad, g) for p, g in zip(disc.parameters(), d_grads))  # D's gradients untouched
    assert all(p.requires_grad for p in disc.parameters())


def test_precision_auto_trains_in_bf16_mixed_where_native_and_records_it(data, tmp_path, monkeypatch, capsys):
    """`precision=auto` with the detection saying "native bf16" trains in bf16-mixed (forced here, so
    it runs on every machine: tiny crops, as emulated bf16 is slow): the losses stay finite, the
    start of the run says which precision it chose, and config.json, the checkpoint and the export
    record the resolved value."""
    import iecast.hardware

    monkeypatch.setattr(iecast.hardware, "native_bf16", lambda device: True)
    config = tiny_config(data, tmp_path / "auto", precision="auto", crop=32, resize=32, loss_adversarial=0,
                         iterations=3, checkpoint_every=3, image_every=3)
    assert config.precision == "auto"
    ckpt = train(config).checkpoint
    err = capsys.readouterr().err
    assert "iecast: training precision bf16-mixed (auto: cpu has native bf16)" in err
    assert json.loads((tmp_path / "auto" / "config.json").read_text())["precision"] == "bf16-mixed"
    lines = [json.loads(l) for l in (tmp_path / "auto" / "log.jsonl").read_text().splitlines()]
    assert lines[0]["precision"] == "bf16-mixed" and lines[0]["precision_requested"] == "auto"
    totals = [l["total"] for l in lines if "total" in l]
    assert len(totals) == 3 and all(torch.isfinite(torch.tensor(totals)))
    assert read_checkpoint(ckpt)["config"]["precision"] == "bf16-mixed"
    exported = export_checkpoint(ckpt, tmp_path / "auto.safetensors")
    assert json.loads(read_stylizer(exported)[1]["config"])["precision"] == "bf16-mixed"

    monkeypatch.setattr(iecast.hardware, "native_bf16", lambda device: False)
    train(dataclasses.replace(config, out_dir=str(tmp_path / "fp32"), iterations=1, checkpoint_every=1))
    assert "iecast: training precision 32-true (auto: no native bf16 on cpu" in capsys.readouterr().err
    assert json.loads((tmp_path / "fp32" / "config.json").read_text())["precision"] == "32-true"


def test_reconstruction_first_trains_only_the_identity_terms_and_leaves_d_alone(data, tmp_path):
    """For the first `reconstruction_first` iterations the generator's loss is the two identity
    terms alone and the discriminator does not step; then every term comes back."""
    train(tiny_config(data, tmp_path / "run", iterations=3, checkpoint_every=1, reconstruction_first=2))
    lines = [json.loads(l) for l in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    terms = {l["iteration"]: l for l in lines if "total" in l}
    for it in (1, 2):
        expected = 50.0 * terms[it]["identity_pixel"] + terms[it]["identity_feature"]
        assert terms[it]["total"] == pytest.approx(expected, rel=1e-5)
        assert "discriminator" not in terms[it] and "adversarial" not in terms[it]
    assert "discriminator" in terms[3] and terms[3]["total"] > 50.0 * terms[3]["identity_pixel"] + terms[3]["identity_feature"]
    d1, d2, d3 = (read_checkpoint(tmp_path / "run" / "checkpoints" / f"ckpt_{i:08d}.pt")["discriminator"] for i in (1, 2, 3))
    assert all(torch.equal(d1[k], d2[k]) for k in d1)
    assert any(not torch.equal(d2[k], d3[k]) for k in d2)
