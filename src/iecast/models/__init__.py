"""Pure `nn.Module`s of IEContraAST; no file I/O here (see `iecast.weights` for loading)."""
from iecast.models.decoder import Decoder
from iecast.models.discriminator import MultiScaleDiscriminator, PatchDiscriminator
from iecast.models.heads import ProjectionHead, content_head, style_head
from iecast.models.network import StyleTransferNetwork
from iecast.models.transform import (TRANSFORM_TAPS, TRANSFORMS, AdaINTransform, FeatureTransform, SANetTransform, StyleAttention,
                                     build_transform, register_transform)
from iecast.models.vgg import TAPS, VGGEncoder

__all__ = [
    "AdaINTransform", "Decoder", "MultiScaleDiscriminator", "PatchDiscriminator", "ProjectionHead",
    "SANetTransform", "StyleAttention", "StyleTransferNetwork", "TAPS", "TRANSFORM_TAPS", "VGGEncoder",
    "FeatureTransform", "TRANSFORMS", "build_transform", "register_transform", "content_head", "style_head",
]
