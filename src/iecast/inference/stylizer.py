"""`Stylizer`: the user-facing inference pipeline around a `StyleTransferNetwork`.

One call does: load and check the images, resize the style (default: shorter side 512 px),
encode the content (in overlapping tiles when it is large), run the style attention in
chunks of content positions against every style's keys and values, blend the results
(strength, several styles with weights, masks), decode (in tiles), crop back to the
content's size and optionally restore the content's colours. Style work is done once per
style (`prepare_style`) and can be reused over many contents or video frames.
"""
from __future__ import annotations

import copy
import functools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from iecast import weights
from iecast.inference.color import match_color_histogram, transfer_luminance
from iecast.errors import IecastError, is_out_of_memory
from iecast.hardware import native_bf16, resolve_device
from iecast.inference import batch as batching
from iecast.images import MAX_PIXELS, MAX_STYLE_PIXELS, MIN_SIDE, tensor_to_pil
from iecast.models.network import StyleTransferNetwork
from iecast.models.transform import QUERY_CHUNK
from iecast.inference.inputs import ImageLike, check_min_side, input_label, load_as_tensor, load_mask
from iecast.inference.options import IecastWarning, StyleSize, StylizeOptions, normalise_style_weights  # noqa: F401 (re-exported)
from iecast.inference.resize import (MIN_PADDED_SIDE, PAD_MULTIPLE, check_padded, check_resize, pad_to_multiple,
                                     resize_shorter_side)
from iecast.inference.tiling import choose_tile, decode_tiled, decoder_halo, encode_tiled

DEFAULT_STYLE_SIZE = 512  # the release's style scale (512x512 resize), for models that do not record theirs
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class PreparedStyle:
    """A style's keys and values for the transform, computed once, reusable for many contents."""

    features: dict
    name: str
    size: tuple[int, int]


def training_style_size(metadata: Mapping[str, str] | None) -> int:
    """The shorter side styles had in training: the trainer's `resize`, as recorded in a stylizer
    file's header; DEFAULT_STYLE_SIZE (the release's) when the header does not say."""
    try:
        size = json.loads((metadata or {}).get("config") or "{}").get("resize")
    except (ValueError, AttributeError):
        return DEFAULT_STYLE_SIZE
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= MIN_SIDE else DEFAULT_STYLE_SIZE


def effective_style_size(style_size: StyleSize, style: object, auto_size: int = DEFAULT_STYLE_SIZE) -> int | None:
    """'auto' resizes files and PIL images to `auto_size` (the model's training scale) and keeps tensors as given."""
    if style_size == "auto":
        return None if isinstance(style, torch.Tensor) else auto_size
    if style_size is not None and (isinstance(style_size, str) or style_size < MIN_SIDE):
        raise IecastError(f"style size must be 'auto', None or at least {MIN_SIDE} pixels (got {style_size!r})")
    return style_size


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """The compute dtype: 'auto' is bf16 where it is native (GPUs with bf16, CPUs with AMX or
    AVX512-BF16), fp16 on older GPUs, else fp32. Outputs then differ slightly between machines;
    pass 'fp32' for bit-stable results."""
    if precision not in PRECISIONS:
        raise IecastError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if native_bf16(device) else torch.float16
        return torch.bfloat16 if native_bf16(device) else torch.float32
    return DTYPES[precision]


def _memory_errors(method):
    """An allocation that fails (the machine's memory, a ulimit, the GPU's) becomes one line naming the
    image, never the allocator's own text."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (MemoryError, RuntimeError) as exc:
            if not is_out_of_memory(exc):
                raise
            text = str(exc)
            image = args[0] if args else kwargs.get("content", kwargs.get("style"))
            wanted = re.search(r"allocate (\d+) bytes", text)
            amount = f" ({int(wanted.group(1)) / 1e9:.1f} GB at once)" if wanted else ""
            what = "content" if method.__name__.startswith("stylize") else "style"
            raise IecastError(f"{input_label(image, what)}: not enough memory to process it{amount}; use a smaller "
                              f"content or style size, a smaller --tile, or a lower --max-pixels") from None
    return wrapper


class Stylizer:
    """Repaint a content image in a style image's style.

    Build with `Stylizer.from_pretrained(name_or_path)` (iecast weights) or
    `Stylizer.from_official(decoder=..., transformer=..., vgg=...)` (the authors' files).
    `precision` is 'auto', 'fp32', 'bf16' or 'fp16'; `channels_last=None` uses it where it
    helps (GPUs and reduced precision). `compile=True` runs the encoder and decoder through
    `torch.compile`: each new input size compiles first (tens of seconds), later calls of that
    size are faster, so it pays for many same-size images or video frames; outputs differ from
    eager ones by float rounding.
    """

    def __init__(self, network: StyleTransferNetwork, device: str | torch.device = "auto", precision: str = "auto",
                 channels_last: bool | None = None, compile: bool = False) -> None:
        self.device = resolve_device(device)
        self.network = network.to(self.device).eval()
        self.dtype = resolve_precision(precision, self.device)
        self.precision = precision
        if channels_last is None:
            channels_last = self.device.type == "cuda" or self.dtype != torch.float32
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.network.to(memory_format=self.memory_format)
        # the network calls run: `network` in fp32, or a copy cast once to the compute precision
        # (autocast would re-cast every weight on every call); `network` stays fp32 for exports
        self.compute_network = self.network if self.dtype == torch.float32 else \
            copy.deepcopy(self.network).to(self.dtype).to(memory_format=self.memory_format)
        if compile:  # a new network object: `network` keeps its plain modules (the weights are shared)
            self.compute_network = StyleTransferNetwork(torch.compile(self.compute_network.encoder, dynamic=False),
                                                        self.compute_network.transform,
                                                        torch.compile(self.compute_network.decoder, dynamic=False))
        self.taps = self.network.transform.taps
        self._decoder_halo = decoder_halo(self.network.decoder.layers, extra_convs=self.network.transform.head_convs)
        self.training_style_size = training_style_size(self.network.metadata)

    @property
    def compute_precision(self) -> str:
        """The precision calls run in ('fp32', 'bf16' or 'fp16'), after resolving 'auto'."""
        return next(name for name, dtype in DTYPES.items() if dtype == self.dtype)

    @property
    def encoder_id(self) -> str:
        return self.network.encoder_id

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike = "default", device: str = "auto",
                        precision: str = "auto", compile: bool = False) -> "Stylizer":
        """Load a shipped model by name (see `iecast.weights.PRETRAINED`) or an iecast .safetensors file."""
        return cls(weights.load_stylizer(weights.resolve_stylizer_path(name_or_path)), device, precision, compile=compile)

    @classmethod
    def from_official(cls, decoder: str | os.PathLike, transformer: str | os.PathLike, vgg: str | os.PathLike,
                      device: str = "auto", precision: str = "auto", compile: bool = False) -> "Stylizer":
        """Load the authors' decoder_iter_*.pth, transformer_iter_*.pth and vgg_normalised.pth."""
        return cls(weights.load_official(decoder, transformer, vgg), device, precision, compile=compile)

    # ------------------------------------------------------------------ helpers

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        """`x` on the device, in the compute precision and layout. No autocast: the compute network's
        weights already have that dtype, and autocast would run padding in fp32 (two casts per conv)."""
        return x.to(self.device, self.dtype).contiguous(memory_format=self.memory_format)

    def _encode(self, image: torch.Tensor, tile: int | None) -> dict[str, torch.Tensor]:
        return encode_tiled(self.compute_network.encoder, self._to_device(image), self.taps, tile)

    def _prepare(self, feats: dict[str, torch.Tensor], name: str, size: tuple[int, int]) -> PreparedStyle:
        return PreparedStyle(self.compute_network.transform.prepare_style(feats), name, size)

    # ------------------------------------------------------------------ styles

    def load_style(self, style: ImageLike, style_size: StyleSize = "auto", max_pixels: int | None = MAX_PIXELS) -> torch.Tensor:
        """A style as the (1, 3, H, W) tensor `prepare_style` encodes: read, checked and resized.

        Its size after resizing must be within `max_pixels` and, since a style is encoded whole
        (not in tiles), within MAX_STYLE_PIXELS too; both are checked before resizing.
        `max_pixels=None` lifts both limits.
        """
        label = input_label(style, "style")
        size = effective_style_size(style_size, style, self.training_style_size)
        s = load_as_tensor(style, label, max_pixels)[:1]
        check_min_side(s, label)
        check_resize(label, *s.shape[-2:], size, max_pixels)
        if max_pixels is not None and MAX_STYLE_PIXELS < max_pixels:
            check_resize(label, *s.shape[-2:], size, MAX_STYLE_PIXELS, "style limit",
                         "styles are encoded whole: give a smaller style size (--style-size) or crop the style")
        return resize_shorter_side(s, size, max_pixels=max_pixels, label=label)

    @_memory_errors
    @torch.inference_mode()
    def prepare_style(self, style: ImageLike | PreparedStyle, style_size: StyleSize = "auto",
                      match_colors_of: torch.Tensor | None = None, max_pixels: int | None = MAX_PIXELS) -> PreparedStyle:
        """Encode a style once, resized so its shorter side is `style_size` (None keeps its size;
        'auto' is the model's `training_style_size` for files and PIL images and keeps tensors as given).

        `match_colors_of` (a content tensor) recolours the style to that content's colour
        statistics first (the 'histogram' colour mode).
        """
        if isinstance(style, PreparedStyle):
            return style
        label = input_label(style, "style")
        s = self.load_style(style, style_size, max_pixels)
        if match_colors_of is not None:
            s = match_color_histogram(s, match_colors_of[:1].to(s))
        s, size = pad_to_multiple(s, 1, MIN_PADDED_SIDE)
        return self._prepare(self._encode(s, None), Path(label).stem if label != "style" else label, size)

    # ------------------------------------------------------------------ stylize

    @_memory_errors
    @torch.inference_mode()
    def stylize(self, content: ImageLike, style: ImageLike | PreparedStyle | Sequence[ImageLike | PreparedStyle],
                alpha: float = 1.0, *, style_weights: Sequence[float] | None = None,
                masks: Sequence[ImageLike] | None = None, preserve_color: str | None = None,
                content_size: int | None = None, style_size: StyleSize = "auto",
                tile: int | str | None = "auto", max_pixels: int | None = MAX_PIXELS,
                options: StylizeOptions | None = None) -> Image.Image | torch.Tensor:
        """Stylize `content` with one style or a blend of several; the output has the content's size.

        - `alpha` in [0, 1]: 0 gives the content's reconstruction T(c, c), 1 the full stylization.
        - several styles: `style_weights` (normalised to sum 1, equal if omitted) interpolate the
          transformed features; or `masks` (one per style) put each style in its own region
          (where no mask covers, the content's reconstruction shows; overlaps are averaged).
        - `preserve_color`: 'luminance' keeps the content's chroma, 'histogram' recolours the
          styles to the content's colour statistics before stylizing.
        - `content_size` / `style_size`: resize so the shorter side has that many pixels
          (None keeps the size). `style_size='auto'` resizes style files and PIL images to
          `training_style_size`, the scale the model was trained at (512 for the release's
          preset, 256 for `cpu-small`), and takes style tensors as given.
        - `tile`: 'auto' (tile large images), None (never) or a tile side in pixels.
        - `options`: a `StylizeOptions` instead of the keywords above (they are then ignored).

        Paths and PIL images give a PIL image; tensors (N or 1, 3, H, W) in [0, 1] give a tensor.
        """
        # 1. the options, checked once
        styles = list(style) if isinstance(style, (list, tuple)) else [style]
        opts = (options or StylizeOptions(alpha, style_weights, preserve_color, content_size, style_size, tile, max_pixels))
        opts = opts.checked(len(styles), None if masks is None else len(masks))
        # 2. the content (and masks): read, resized, checked against the pixel limit
        c, mask_maps = self._load_content(content, masks, opts)
        # 3. the styles, encoded once (per content when recoloured to it)
        shared = None if opts.preserve_color == "histogram" else \
            [self.prepare_style(s, opts.style_size, None, opts.max_pixels) for s in styles]
        outputs = []
        for one in c.split(1):
            prepared = shared if shared is not None else \
                [self.prepare_style(s, opts.style_size, one, opts.max_pixels) for s in styles]
            # 4. encode, mix, decode
            out = self.stylize_prepared(one, prepared, opts.alpha, opts.style_weights, mask_maps, opts.style_size, opts.tile)
            # 5. post-process
            if opts.preserve_color == "luminance":
                out = transfer_luminance(out, one.to(out.device))
            outputs.append(out)
        out = outputs[0] if len(outputs) == 1 else torch.cat(outputs)  # no copy of a single image
        del outputs
        if isinstance(content, torch.Tensor):
            out = out.contiguous()  # a cropped view of the padded result otherwise
            return out if content.dim() == 4 else out[0]
        return tensor_to_pil(out)

    @_memory_errors
    @torch.inference_mode()
    def stylize_batch(self, contents: Sequence[torch.Tensor], style: ImageLike | PreparedStyle | Sequence[ImageLike | PreparedStyle],
                      options: StylizeOptions | None = None, batch_size: int | None = None) -> list[torch.Tensor]:
        """`stylize` for many contents with the same style(s), in batches where that helps; a list of (1, 3, H, W) tensors.

        `contents` are (1, 3, H, W) or (3, H, W) tensors in [0, 1], already at their final size
        (`options.content_size` is applied again, a no-op then). Styles are prepared once for all.
        Contents of equal size run `batch_size` at a time (None: `default_batch_size` of the device)
        in one forward, within the pixel limits of one image (see `iecast.inference.batch`); each gives
        `stylize`'s result up to float rounding. Sizes that need tiles, colour preservation, or a
        batch size of 1 go through `stylize`, one content at a time.
        """
        styles = list(style) if isinstance(style, (list, tuple)) else [style]
        opts = (options or StylizeOptions()).checked(len(styles))
        size = batching.default_batch_size(self.device) if batch_size is None else batch_size
        for i, content in enumerate(contents):
            check_min_side(content, f"content {i + 1}")
            check_padded(f"content {i + 1}", *content.shape[-2:], opts.max_pixels)
        if opts.preserve_color == "histogram":  # styles recoloured per content: nothing to share
            return [self.stylize(c, styles, options=opts) for c in contents]
        prepared = [self.prepare_style(s, opts.style_size, None, opts.max_pixels) for s in styles]
        run_batch = lambda x: self.stylize_prepared(x, prepared, opts.alpha, opts.style_weights, None,  # noqa: E731
                                                    opts.style_size, opts.tile)
        run_one = lambda x: self.stylize(x, prepared, options=opts)  # noqa: E731
        return batching.stylize_batch(run_batch, run_one, contents, opts, size)

    def load_content(self, content: ImageLike, options: StylizeOptions | None = None) -> torch.Tensor:
        """A content as the (N, 3, H, W) tensor `stylize` works on: read, resized to `content_size`, checked."""
        return self._load_content(content, None, options or StylizeOptions())[0]

    def _load_content(self, content: ImageLike, masks: Sequence[ImageLike] | None,
                      opts: StylizeOptions) -> tuple[torch.Tensor, torch.Tensor | None]:
        label = input_label(content, "content")
        c = load_as_tensor(content, label, opts.max_pixels)
        c = resize_shorter_side(c, opts.content_size, max_pixels=opts.max_pixels, label=label)
        check_min_side(c, label)
        check_padded(label, *c.shape[-2:], opts.max_pixels)
        if masks is None:
            return c, None
        return c, torch.cat([load_mask(m, tuple(c.shape[-2:]), f"mask {i + 1}", opts.max_pixels) for i, m in enumerate(masks)])

    @torch.inference_mode()
    def stylize_prepared(self, content: torch.Tensor, styles: Sequence[PreparedStyle], alpha: float = 1.0,
                         style_weights: Sequence[float] | None = None, masks: torch.Tensor | None = None,
                         identity_size: StyleSize = "auto", tile: int | str | None = "auto",
                         features_hook: Callable[[torch.Tensor], torch.Tensor] | None = None,
                         content_hook: Callable[[dict], dict] | None = None) -> torch.Tensor:
        """The core pass on a (1, 3, H, W) content tensor (or N of one size: `stylize_batch`) with prepared styles;
        returns (N, 3, H, W) in [0, 1].

        `masks` is (len(styles), 1, H, W) of 0/1. The content's own keys (for alpha < 1 and
        uncovered mask areas) come from the content downscaled so its shorter side is at most
        `identity_size` ('auto': the model's `training_style_size`, as for styles; None: full
        size), which bounds their cost on large images. `content_hook`, if given, receives the
        content's encoder features ({tap: tensor}, of the padded content) and returns the ones to
        transform; `features_hook` receives the transformed features and returns the ones to decode
        (video's temporal blending uses them).
        """
        if identity_size == "auto":
            identity_size = self.training_style_size
        height, width = content.shape[-2:]
        blend = list(style_weights) if style_weights is not None else [1.0 / len(styles)] * len(styles)
        tile_px = choose_tile(height, width, tile)
        padded, _ = pad_to_multiple(content, PAD_MULTIPLE, MIN_PADDED_SIDE)
        feats = self._encode(padded, tile_px)
        if content_hook is not None:
            feats = content_hook(feats)
        grid = feats["relu4_1"].shape[-2:]
        if masks is not None:
            padded_masks, _ = pad_to_multiple(masks.to(self.device, torch.float32), PAD_MULTIPLE, MIN_PADDED_SIDE)
            cover = F.interpolate(padded_masks, size=grid, mode="nearest")
            terms: list = list((alpha * cover / cover.sum(0, keepdim=True).clamp_min(1)).split(1))
        else:
            terms = [alpha * w for w in blend]
        identity_weight = 1 - sum(terms)
        pairs = [(w, s) for w, s in zip(terms, styles) if not (isinstance(w, float) and w == 0)]
        needs_identity = bool((identity_weight.abs() > 1e-7).any()) if isinstance(identity_weight, torch.Tensor) \
            else abs(identity_weight) > 1e-7
        if needs_identity:
            pairs.append((identity_weight, self._identity_style(padded, feats, identity_size)))
        mixed = self._transform_mix(feats, pairs)
        del feats, padded  # whole-image buffers: the decoder needs only `mixed`
        if features_hook is not None:  # e.g. video's temporal blending of the transformed features
            mixed = features_hook(mixed)
        out = decode_tiled(self._head, mixed, tile_px, self._decoder_halo)
        return out[:, :, :height, :width].clamp_(0, 1)

    def _identity_style(self, padded: torch.Tensor, feats: dict[str, torch.Tensor], size: int | None) -> PreparedStyle:
        """The content as its own style (T(c, c)), from a downscaled copy when it is large."""
        if size is None or min(padded.shape[-2:]) <= size:
            return self._prepare(feats, "content", tuple(padded.shape[-2:]))
        small, _ = pad_to_multiple(resize_shorter_side(padded, size), 1, MIN_PADDED_SIDE)
        return self._prepare(self._encode(small, None), "content", tuple(small.shape[-2:]))

    def _transform_mix(self, feats: dict[str, torch.Tensor], pairs: list) -> torch.Tensor:
        """sum_i w_i * T'(c, s_i) (the transform before its head) for (weight, PreparedStyle) pairs;
        weights are floats or (1, 1, h, w) maps. Blending before the linear head equals blending T."""
        return self.compute_network.transform.mix(feats, [(w, style.features) for w, style in pairs], QUERY_CHUNK)

    def _head(self, mixed: torch.Tensor) -> torch.Tensor:
        """The transform's head and the decoder on a (tile of the) blended transform output."""
        return self.compute_network.decoder(self.compute_network.transform.head(self._to_device(mixed)))
