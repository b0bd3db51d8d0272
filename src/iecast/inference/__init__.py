"""Inference: the `Stylizer` pipeline, its options, tiling, colour preservation, videos with temporal blending, input expansion and ONNX/TorchScript export."""
