"""`make demo` / `python -m iecast.demo`: stylize the bundled sample photo with the bundled
painting, using the best trained weights available offline, and print where the result is.

With no trained weights installed it says so, says how to get them, writes nothing and
exits with status 1: an untrained network's output would only mislead.
"""
from __future__ import annotations

import argparse
import importlib.resources
import sys
from pathlib import Path

from iecast import weights
from iecast.errors import IecastError

SAMPLE_CONTENT = "classic_cars.jpg"
SAMPLE_STYLE = "starry_night.jpg"
DEFAULT_OUTPUT = Path("outputs") / "demo" / "classic_cars_stylized_starry_night.jpg"

NO_WEIGHTS = """\
iecast demo: no trained iecast weights are available offline, so there is nothing to show.
  {known}
  To get weights:
    - train:  .venv/bin/iecast train --preset cpu-small --content DIR --style DIR --out runs/demo
      then:   .venv/bin/iecast export runs/demo/<checkpoint> -o model.safetensors
      and:    .venv/bin/python -m iecast.demo --weights model.safetensors
    - or use the authors' release files (decoder_iter_160000.pth, transformer_iter_160000.pth,
      vgg_normalised.pth):  .venv/bin/iecast stylize --official DIR -c PHOTO -s PAINTING -o out.jpg
No output was written."""


def sample_path(name: str) -> Path:
    """A bundled sample image (see iecast/assets/samples/SOURCES.md for origins and licences)."""
    return Path(str(importlib.resources.files("iecast.assets").joinpath("samples", name)))


def offline_weights() -> tuple[str, Path] | None:
    """The first registered pretrained model ('default' first) whose file is already on disk."""
    names = sorted(weights.PRETRAINED, key=lambda n: n != "default")
    for name in names:
        entry = weights.PRETRAINED[name]
        packaged = Path(str(importlib.resources.files("iecast.assets").joinpath(entry.file_name)))
        if packaged.is_file() or (weights.cache_dir() / entry.file_name).is_file():
            return name, entry.path()
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m iecast.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="an iecast .safetensors stylizer to use instead of the registered ones")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT, help=f"default {DEFAULT_OUTPUT}")
    args = parser.parse_args(argv)
    try:
        if args.weights:
            label, path = args.weights, weights.resolve_stylizer_path(args.weights)
        else:
            found = offline_weights()
            if found is None:
                known = (f"iecast.weights.PRETRAINED lists {', '.join(map(repr, weights.PRETRAINED))}, but none of "
                         f"their files is in the package or in {weights.cache_dir()}." if weights.PRETRAINED
                         else "iecast.weights.PRETRAINED has no trained model registered yet.")
                print(NO_WEIGHTS.format(known=known), file=sys.stderr)
                return 1
            label, path = found
        from iecast.images import save_image
        from iecast.stylizer import Stylizer

        result = Stylizer.from_pretrained(path).stylize(sample_path(SAMPLE_CONTENT), sample_path(SAMPLE_STYLE))
        out = save_image(result, args.output)
    except IecastError as exc:
        print(f"iecast demo: error: {exc}", file=sys.stderr)
        return 1
    print(f"stylized {SAMPLE_CONTENT} with {SAMPLE_STYLE} (van Gogh) using weights {label!r}")
    print(f"result: {out.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
