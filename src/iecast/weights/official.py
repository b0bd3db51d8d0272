"""The authors' official release files (decoder_iter_*.pth, transformer_iter_*.pth,
vgg_normalised.pth): finding them in a folder and building the network from them."""
from __future__ import annotations

import re
from pathlib import Path

from iecast.errors import IecastError
from iecast.models.network import StyleTransferNetwork
from iecast.models.transform import build_transform
from iecast.weights.cache import load_into, read_torch_state_dict
from iecast.weights.encoders import load_encoder

OFFICIAL_ENCODER = "vgg19-normalised"


def load_official(decoder: str | Path, transformer: str | Path, vgg: str | Path) -> StyleTransferNetwork:
    """The authors' three files (decoder_iter_*.pth, transformer_iter_*.pth, vgg_normalised.pth)."""
    encoder = load_encoder(OFFICIAL_ENCODER, vgg)
    network = StyleTransferNetwork(encoder, build_transform("sanet"))
    load_into(network.transform, read_torch_state_dict(transformer), transformer, "IEContraAST transformer")
    dec_state = {f"layers.{k}": v for k, v in read_torch_state_dict(decoder).items()}
    load_into(network.decoder, dec_state, decoder, "IEContraAST decoder")
    return network.eval()


def official_files(folder: str | Path) -> dict[str, Path]:
    """The authors' decoder, transformer and vgg files in an official-release folder; the
    decoder/transformer with the highest iteration win."""
    folder = Path(folder)
    if not folder.is_dir():
        raise IecastError(f"{folder}: no such folder (expected the authors' decoder/transformer/vgg files)")

    def newest(prefix: str) -> Path:
        files = sorted(folder.glob(f"{prefix}_iter_*.pth"),
                       key=lambda p: int(re.sub(r"\D", "", p.stem.rsplit("_", 1)[-1]) or 0))
        if not files:
            raise IecastError(f"{folder}: no {prefix}_iter_*.pth file")
        return files[-1]

    decoder, transformer = newest("decoder"), newest("transformer")
    vgg = folder / "vgg_normalised.pth"
    if not vgg.is_file():
        raise IecastError(f"{folder}: no vgg_normalised.pth file")
    return {"decoder": decoder, "transformer": transformer, "vgg": vgg}
