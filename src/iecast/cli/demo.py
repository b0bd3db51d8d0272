"""`make demo` / `python -m iecast.cli.demo`: stylize the bundled sample photo with the bundled
painting, using the best trained weights available offline, and print where the result is.

With no trained weights installed it says so, says how to get them, and shows Gatys et al.'s
optimisation with the same offline encoder instead (`iecast.evaluation.gatys`): a real stylization that
needs no training, never an untrained network's output.
"""
from __future__ import annotations

import argparse
import importlib.resources
import sys
from pathlib import Path

from PIL import Image

from iecast import weights
from iecast.errors import IecastError
from iecast.evaluation.gatys import GatysConfig, GatysStylizer
from iecast.images import fit_within, load_image, pil_to_tensor, save_image, tensor_to_pil
from iecast.inference.stylizer import Stylizer
from iecast.weights import registry

SAMPLE_CONTENT = "classic_cars.jpg"
SAMPLE_STYLE = "starry_night.jpg"
DEFAULT_OUTPUT = Path("outputs") / "demo" / "classic_cars_stylized_starry_night.jpg"
GATYS_SIZE = 320
GATYS_STEPS = 50

NO_WEIGHTS = """\
iecast demo: no trained IEContraAST weights are available offline.
  {known}
  So this demo shows Gatys et al.'s optimisation with the same offline VGG-16 instead
  ({steps} L-BFGS steps at {size} px; 1-2 minutes on a laptop CPU).
  To stylize with IEContraAST:
    - train:  .venv/bin/iecast train --preset cpu-small --content DIR --style DIR --out runs/demo
      then:   .venv/bin/iecast export runs/demo/<checkpoint> -o model.safetensors
      and:    .venv/bin/python -m iecast.cli.demo --weights model.safetensors
    - or use the authors' release files (decoder_iter_160000.pth, transformer_iter_160000.pth,
      vgg_normalised.pth):  .venv/bin/iecast stylize --official DIR -c PHOTO -s PAINTING -o out.jpg"""


def sample_path(name: str) -> Path:
    """A bundled sample image (see iecast/assets/samples/SOURCES.md for origins and licences)."""
    return Path(str(importlib.resources.files("iecast.assets").joinpath("samples", name)))


def offline_weights() -> tuple[str, Path] | None:
    """The first registered pretrained model ('default' first) whose file is already on disk."""
    names = sorted(registry.PRETRAINED, key=lambda n: n != "default")
    for name in names:
        local = registry.PRETRAINED[name].local_path()
        if local is not None:
            return name, local
    return None


def gatys_sample(size: int = GATYS_SIZE, steps: int = GATYS_STEPS) -> Image.Image:
    """The bundled sample stylized by Gatys optimisation on the default offline encoder (PIL image).

    Both images are downscaled so their longer side is at most `size`: the optimisation costs one encoder
    pass per step at full resolution, so the size sets the run time.
    """
    content, style = (pil_to_tensor(fit_within(load_image(sample_path(name)), size))
                      for name in (SAMPLE_CONTENT, SAMPLE_STYLE))
    stylizer = GatysStylizer(weights.load_encoder(weights.DEFAULT_ENCODER).eval(), GatysConfig(steps=steps))
    return tensor_to_pil(stylizer.stylize(content, style))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m iecast.cli.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="an iecast .safetensors stylizer to use instead of the registered ones")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT, help=f"default {DEFAULT_OUTPUT}")
    parser.add_argument("--gatys-size", type=int, default=GATYS_SIZE,
                        help=f"longer side of the Gatys result shown when no trained weights exist (default {GATYS_SIZE})")
    parser.add_argument("--gatys-steps", type=int, default=GATYS_STEPS,
                        help=f"L-BFGS steps of that Gatys optimisation (default {GATYS_STEPS})")
    args = parser.parse_args(argv)
    if args.gatys_size < 32 or args.gatys_steps < 1:
        parser.error("--gatys-size must be at least 32 and --gatys-steps at least 1")
    try:
        if args.weights:
            found = args.weights, weights.resolve_stylizer_path(args.weights)
        else:
            found = offline_weights()
        if found is None:
            known = (f"iecast.weights.PRETRAINED lists {', '.join(map(repr, registry.PRETRAINED))}, but none of "
                     f"their files is in the package or in {weights.cache_dir()}." if registry.PRETRAINED
                     else "No trained model is registered in iecast.weights.PRETRAINED yet (see docs/training/).")
            print(NO_WEIGHTS.format(known=known, steps=args.gatys_steps, size=args.gatys_size), file=sys.stderr)
            result = gatys_sample(args.gatys_size, args.gatys_steps)
            method = f"Gatys et al.'s optimisation ({weights.DEFAULT_ENCODER}; no trained IEContraAST model yet)"
        else:
            label, path = found
            result = Stylizer.from_pretrained(path).stylize(sample_path(SAMPLE_CONTENT), sample_path(SAMPLE_STYLE))
            method = f"IEContraAST weights {label!r}"
        out = save_image(result, args.output)
    except IecastError as exc:
        print(f"iecast demo: error: {exc}", file=sys.stderr)
        return 1
    print(f"stylized {SAMPLE_CONTENT} with {SAMPLE_STYLE} (van Gogh) using {method}")
    print(f"result: {out.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
