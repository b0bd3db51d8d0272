"""Stylizing videos (PyAV) and frame folders, one frame at a time: memory does not grow with length.

The style is prepared once and reused for every frame. Video files keep their frame rate and
frame count; the audio stream is copied unchanged when the output container can hold it, and
re-encoded to AAC otherwise. Output video is H.264 (yuv420p), written to a temporary file and
renamed at the end, so a failed run never leaves a half-written video (the reading and writing
are in `iecast.inference.video_io`).
"""
from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path
from typing import Iterator, Sequence

import torch
from tqdm.auto import tqdm

from iecast.errors import IecastError
from iecast.images import MAX_PIXELS, MIN_SIDE
from iecast.inference.batch import batchable, default_batch_size
from iecast.inference.color import transfer_luminance
from iecast.inference.inputs import ImageLike, load_mask
from iecast.inference.options import IecastWarning, StyleSize, StylizeOptions
from iecast.inference.resize import check_padded, check_resize, resize_shorter_side
from iecast.inference.stylizer import PreparedStyle, Stylizer
from iecast.inference.temporal import DEFAULT_STRENGTH, TEMPORAL_PIXEL_SHARE, TemporalBlender, temporal_pixel_limit
from iecast.inference.video_io import (FRAME_EXTENSIONS, VIDEO_OUTPUT_EXTENSIONS, FolderWriter, FrameSource,
                                       VideoWriter, remove_partial_frames)


def stylize_video(stylizer: Stylizer, source: str | os.PathLike,
                  style: ImageLike | PreparedStyle | Sequence[ImageLike | PreparedStyle],
                  output: str | os.PathLike, *, alpha: float = 1.0, style_weights: Sequence[float] | None = None,
                  masks: Sequence[ImageLike] | None = None, preserve_color: str | None = None,
                  content_size: int | None = None, style_size: StyleSize = "auto",
                  tile: int | str | None = "auto", fps: float | None = None, crf: int = 18,
                  frame_ext: str | None = None, progress: bool = True,
                  max_pixels: int | None = MAX_PIXELS, temporal: bool | float = False,
                  options: StylizeOptions | None = None, batch_size: int | None = None) -> Path:
    """Stylize every frame of a video file or frame folder into a video file or frame folder.

    `output` ending in .mp4/.mkv/.mov is a video (H.264, same frame rate, audio copied);
    anything else is a folder of frames (`frame_ext`, default .png). Several styles are blended
    (equal weights unless `style_weights`); masks apply to every frame. With
    `preserve_color='histogram'` the styles take the first frame's colours. `fps` sets the rate
    of a frame folder (default 25) or overrides a video's.

    `temporal=True` keeps adjacent frames consistent: each frame's content features (before the
    attention) are blended with the previous frame's, warped by optical flow where the flow is reliable
    (see `iecast.inference.temporal`; needs OpenCV). A number in (0, 1) sets the previous frame's share
    of the content features (True: `iecast.inference.temporal.DEFAULT_STRENGTH`, 0.7). Off by default:
    every frame is then stylized on its own. `options` replaces the stylization keywords, as in `Stylizer.stylize`.
    `batch_size` frames are stylized at once (`Stylizer.stylize_batch`; None: 1 on CPU, 4 on CUDA), except with
    `temporal`, masks or colour preservation, which go frame by frame.
    A file that ends before the frames it declares gives an `IecastWarning` saying how many
    frames were decoded.
    """
    styles = list(style) if isinstance(style, (list, tuple)) else [style]
    options = (options or StylizeOptions(alpha, style_weights, preserve_color, content_size, style_size, tile, max_pixels))
    options = options.checked(len(styles), None if masks is None else len(masks))
    output = Path(output)
    as_video, ext = _check_output(output, frame_ext)
    blender = _temporal_blender(temporal)
    file_limit = options.max_pixels
    if blender is not None:  # the carried frame costs memory: a lower pixel limit
        options = dataclasses.replace(options, max_pixels=temporal_pixel_limit(options.max_pixels))
    content_size, style_size, max_pixels = options.content_size, options.style_size, options.max_pixels
    batch_size = _frame_batch(stylizer, batch_size, blender is not None or masks is not None, options)
    source_frames = _open_frames(source, fps, content_size, file_limit, max_pixels if blender else None)
    writer = None
    try:
        # histogram colour preservation takes the first frame's colours, so those styles wait for it
        prepared = None if options.preserve_color == "histogram" else _prepare(stylizer, styles, style_size, None, max_pixels)
        writer = _open_writer(output, as_video, ext, source_frames, crf)
        items = _stylized_items(stylizer, source, source_frames, (styles, prepared), masks, options, blender, batch_size)
        with tqdm(total=source_frames.count, desc="video", unit="frame", disable=not progress or None) as bar:
            for kind, item in items:
                if kind == "audio":
                    writer.write_audio(item)
                    continue
                writer.write_frame(item.cpu())
                bar.update(1)
        result, writer = writer.finish(), None  # finished: nothing left to abort
        return result
    finally:
        source_frames.close()
        if writer is not None:
            writer.abort()


def _frame_batch(stylizer: Stylizer, batch_size: int | None, frame_by_frame: bool, options: StylizeOptions) -> int:
    """Frames per batch: `batch_size` (None: the device's default), 1 for what goes frame by frame."""
    if batch_size is not None and batch_size < 1:
        raise IecastError(f"batch size must be at least 1 (got {batch_size})")
    if frame_by_frame or not batchable(options):
        return 1
    return batch_size or default_batch_size(stylizer.device)


def _stylized_items(stylizer: Stylizer, source, source_frames: FrameSource, styles: tuple[list, list | None], masks,
                    options: StylizeOptions, blender: TemporalBlender | None,
                    batch_size: int) -> Iterator[tuple[str, object]]:
    """('frame', stylized (1, 3, H, W)) and ('audio', packet) in the source's order. `styles` is (the styles,
    them prepared or None: prepared on the first frame, for histogram colours). With `batch_size` over 1,
    frames (and the audio between them) wait until `batch_size` frames can be stylized in one batch."""
    styles, prepared = styles
    mask_maps, waiting = None, []
    for kind, item in source_frames.items():
        if kind == "frame" and blender is not None:
            _check_temporal_frame(*item.shape[-2:], options.content_size, options.max_pixels)
        if kind == "frame":
            item = resize_shorter_side(item, options.content_size, max_pixels=options.max_pixels, label="frames")
        if batch_size > 1:
            waiting.append((kind, item))
            if sum(k == "frame" for k, _ in waiting) >= batch_size:
                yield from _flush(stylizer, waiting, prepared, options, batch_size)
            continue
        if kind == "audio":
            yield kind, item
            continue
        if prepared is None:
            prepared = _prepare(stylizer, styles, options.style_size, item, options.max_pixels)
        if masks is not None and mask_maps is None:
            size = tuple(item.shape[-2:])
            mask_maps = torch.cat([load_mask(m, size, f"mask {i + 1}") for i, m in enumerate(masks)])
        yield "frame", _stylize_frame(stylizer, blender, source, item, prepared, mask_maps, options)
    yield from _flush(stylizer, waiting, prepared, options, batch_size)


def _flush(stylizer: Stylizer, waiting: list, prepared, options: StylizeOptions,
           batch_size: int) -> Iterator[tuple[str, object]]:
    """The waiting items in order, their frames stylized together (`Stylizer.stylize_batch`); empties `waiting`."""
    frames = [item for kind, item in waiting if kind == "frame"]
    outs = iter(stylizer.stylize_batch(frames, prepared, options, batch_size) if frames else [])
    items = [(kind, next(outs) if kind == "frame" else item) for kind, item in waiting]
    waiting.clear()
    yield from items


def _check_output(output: Path, frame_ext: str | None) -> tuple[bool, str]:
    """(whether `output` is a video file, the frame extension for a folder); refuses unknown formats and
    folders that already hold frames, after removing the frames an interrupted run left there."""
    as_video = output.suffix.lower() in VIDEO_OUTPUT_EXTENSIONS
    if output.suffix and not as_video and not output.is_dir():
        raise IecastError(f"{output}: unsupported video format {output.suffix}; use "
                          f"{', '.join(VIDEO_OUTPUT_EXTENSIONS)} or a folder for frames")
    ext = (frame_ext if frame_ext.startswith(".") else f".{frame_ext}") if frame_ext else ".png"
    if ext.lower() not in FRAME_EXTENSIONS:
        raise IecastError(f"unsupported frame format {ext}; use one of {', '.join(FRAME_EXTENSIONS)}")
    if not as_video and output.is_dir():
        removed = remove_partial_frames(output)
        if removed:  # stacklevel: the warning points at stylize_video's caller
            warnings.warn(f"{output}: removed {removed} frames left by an interrupted run", IecastWarning, stacklevel=3)
    if not as_video and output.is_dir() and any(output.glob("frame_*")):
        raise IecastError(f"{output}: already holds frame_* files; choose an empty folder")
    return as_video, ext


def _temporal_blender(temporal: bool | float) -> TemporalBlender | None:
    """The blender `temporal` asks for (True: the default strength; a number in (0, 1): that one), or None."""
    if temporal is False or temporal is None:
        return None
    strength = DEFAULT_STRENGTH if temporal is True else float(temporal)
    if not 0.0 < strength < 1.0:
        raise IecastError(f"temporal strength must be in (0, 1) (got {temporal})")
    return TemporalBlender(content_weight=strength)


def _check_temporal_frame(height: int, width: int, content_size: int | None, limit: int | None) -> None:
    """A frame over `--temporal`'s lower pixel limit (`temporal_pixel_limit`) is refused, saying why."""
    check_resize("frames", height, width, content_size, limit,
                 limit=f"--temporal limit ({TEMPORAL_PIXEL_SHARE:.0%} of --max-pixels, as it keeps the previous "
                       "frame's features)", hint="use --content-size, or raise --max-pixels")


def _open_frames(source, fps: float | None, content_size: int | None, max_pixels: int | None,
                 temporal_limit: int | None = None) -> FrameSource:
    """The source's frames, opened and checked against the limits, `--temporal`'s too (`temporal_limit`;
    frame folders: their first frame here, every frame as it is stylized)."""
    frames = FrameSource(source, fps, max_pixels)
    try:
        if frames.size is not None:
            check_resize("frames", frames.size[1], frames.size[0], content_size, max_pixels)
        if frames.size is not None and temporal_limit is not None:
            _check_temporal_frame(frames.size[1], frames.size[0], content_size, temporal_limit)
    except BaseException:
        frames.close()
        raise
    return frames


def _open_writer(output: Path, as_video: bool, ext: str, source_frames: FrameSource,
                 crf: int) -> VideoWriter | FolderWriter:
    """An H.264 video at the source's frame rate (with its audio), or a folder of `ext` frames."""
    if as_video:
        return VideoWriter(output, source_frames.fps, source_frames.audio, crf)
    return FolderWriter(output, ext)


def _prepare(stylizer: Stylizer, styles: list, style_size: StyleSize, frame: torch.Tensor | None,
             max_pixels: int | None) -> list[PreparedStyle]:
    """Every style prepared once for the whole video (`frame`: the first frame, for histogram colours)."""
    return [stylizer.prepare_style(s, style_size, frame, max_pixels) for s in styles]


def _stylize_frame(stylizer: Stylizer, blender: TemporalBlender | None, source, frame: torch.Tensor, prepared,
                   mask_maps, options: StylizeOptions) -> torch.Tensor:
    """One frame stylized on its own, or (with a blender) with its content features blended with the previous frame's.
    The frame is already at `content_size` and the styles prepared (histogram colours included), so those steps are no-ops."""
    if blender is None:
        return stylizer.stylize(frame, prepared, masks=mask_maps, options=options)
    if min(frame.shape[-2:]) < MIN_SIDE:
        raise IecastError(f"{source}: frames of {frame.shape[-1]}x{frame.shape[-2]} are too small; "
                          f"each side must be at least {MIN_SIDE} pixels")
    check_padded("frames", *frame.shape[-2:], options.max_pixels)
    luminance = (lambda x, content=frame: transfer_luminance(x, content.to(x.device))) \
        if options.preserve_color == "luminance" else None
    return blender.stylize(stylizer, frame, prepared, options.alpha, options.style_weights, mask_maps,
                           options.style_size, options.tile, finish=luminance)
