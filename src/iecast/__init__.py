"""iecast: arbitrary artistic style transfer (IEContraAST, Chen et al., NeurIPS 2021)."""
__version__ = "0.1.0"

from iecast.errors import IecastError  # noqa: E402


def __getattr__(name: str):
    if name == "Stylizer":
        from iecast.inference.stylizer import Stylizer

        return Stylizer
    if name == "load_encoder":
        from iecast.weights.encoders import load_encoder

        return load_encoder
    raise AttributeError(f"module 'iecast' has no attribute {name!r}")


__all__ = ["IecastError", "Stylizer", "__version__", "load_encoder"]
