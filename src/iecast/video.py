"""Stylizing videos (PyAV) and frame folders, one frame at a time: memory does not grow with length.

The style is prepared once and reused for every frame. Video files keep their frame rate and
frame count; the audio stream is copied unchanged when the output container can hold it, and
re-encoded to AAC otherwise. Output video is H.264 (yuv420p), written to a temporary file and
renamed at the end, so a failed run never leaves a half-written video.
"""
from __future__ import annotations

import os
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from iecast.errors import IecastError
from iecast.images import save_image, tensor_to_pil
from iecast.inputs import images_in_folder
from iecast.stylizer import (MAX_PIXELS, ImageLike, IecastWarning, PreparedStyle, StyleSize, Stylizer,
                             load_as_tensor, load_mask, normalise_style_weights, resize_shorter_side)

VIDEO_OUTPUT_EXTENSIONS = (".mp4", ".mkv", ".mov")
FRAME_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
DEFAULT_FOLDER_FPS = Fraction(25)
AUDIO_COPYABLE = {  # audio codecs each output container takes as they are
    ".mp4": {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"},
    ".mov": {"aac", "mp3", "ac3", "eac3", "alac", "pcm_s16le", "pcm_s24le", "pcm_f32le"},
    ".mkv": None,  # anything
}


def _av():
    try:
        import av
    except ImportError as exc:
        raise IecastError("video needs PyAV: pip install 'iecast[video]'") from exc
    return av


class FrameSource:
    """Frames of a video file or of a folder of images, with the frame rate and (if known) count."""

    def __init__(self, source: str | os.PathLike, fps: float | Fraction | None = None,
                 max_pixels: int | None = MAX_PIXELS) -> None:
        self.path = Path(source)
        self.max_pixels = max_pixels
        self.container = None
        self.audio = None
        if not self.path.exists():
            raise IecastError(f"{self.path}: no such file or folder")
        if self.path.is_dir():
            self.files = images_in_folder(self.path)
            if not self.files:
                raise IecastError(f"{self.path}: folder has no frames (image files)")
            self.fps = Fraction(fps).limit_denominator(1001) if fps else DEFAULT_FOLDER_FPS
            self.count: int | None = len(self.files)
            return
        av = _av()
        if self.path.stat().st_size == 0:
            raise IecastError(f"{self.path}: empty file")
        try:
            self.container = av.open(str(self.path))
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise IecastError(f"{self.path}: not a readable video ({str(exc).splitlines()[0][:100]})") from exc
        if not self.container.streams.video:
            self.close()
            raise IecastError(f"{self.path}: has no video stream")
        self.video = self.container.streams.video[0]
        rate = self.video.average_rate or self.video.guessed_rate or self.video.base_rate
        self.fps = Fraction(fps).limit_denominator(1001) if fps else Fraction(rate) if rate else DEFAULT_FOLDER_FPS
        self.count = int(self.video.frames) or None
        if self.count is None and self.video.duration and self.video.time_base:
            self.count = round(float(self.video.duration * self.video.time_base * self.fps))
        self.audio = self.container.streams.audio[0] if self.container.streams.audio else None

    def close(self) -> None:
        if self.container is not None:
            self.container.close()
            self.container = None

    def items(self) -> Iterator[tuple[str, object]]:
        """('frame', (1, 3, H, W) tensor) and, for videos with sound, ('audio', packet), in file order."""
        if self.container is None:
            for file in self.files:
                yield "frame", load_as_tensor(file, str(file), self.max_pixels)
            return
        av = _av()
        streams = [self.video] + ([self.audio] if self.audio is not None else [])
        try:
            for packet in self.container.demux(*streams):
                if packet.stream.type == "video":
                    for frame in packet.decode():
                        rgb = frame.to_ndarray(format="rgb24")
                        yield "frame", torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).float().div_(255)
                elif packet.dts is not None:
                    yield "audio", packet
        except av.FFmpegError as exc:
            raise IecastError(f"{self.path}: damaged video ({str(exc).splitlines()[0][:100]})") from exc


class VideoWriter:
    """H.264 video (plus the source's audio) written to a temporary file, renamed on `finish`."""

    def __init__(self, path: Path, fps: Fraction, audio=None, crf: int = 18) -> None:
        av = _av()
        if path.suffix.lower() not in VIDEO_OUTPUT_EXTENSIONS:
            raise IecastError(f"{path}: unsupported video format {path.suffix or '(none)'}; "
                              f"use {', '.join(VIDEO_OUTPUT_EXTENSIONS)} or a folder for frames")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.fps, self.crf = path, fps, crf
        self.tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
        self.container = av.open(str(self.tmp), "w")
        self.stream = None
        self.audio_out = None
        self.resampler = None
        if audio is not None:
            copyable = AUDIO_COPYABLE[path.suffix.lower()]
            if copyable is None or audio.codec_context.name in copyable:
                self.audio_out = self.container.add_stream_from_template(audio)
            else:
                self.audio_out = self.container.add_stream("aac", rate=audio.codec_context.sample_rate or 48000)
                self.resampler = av.AudioResampler(format="fltp", layout=audio.codec_context.layout or "stereo",
                                                   rate=self.audio_out.codec_context.sample_rate)
        self.frames = 0
        self.pending_audio: list = []  # audio packets that arrive before the first frame fixes the size
        self._cropped_warned = False

    def _open_video(self, width: int, height: int) -> None:
        self.stream = self.container.add_stream("libx264", rate=self.fps)
        self.stream.width, self.stream.height = width, height
        self.stream.pix_fmt = "yuv420p"
        self.stream.codec_context.time_base = 1 / self.fps
        self.stream.options = {"crf": str(self.crf), "preset": "medium"}
        pending, self.pending_audio = self.pending_audio, []
        for packet in pending:
            self.write_audio(packet)

    def write_frame(self, image: torch.Tensor) -> None:
        """One (1, 3, H, W) frame in [0, 1]; H.264 needs even sides, so an odd last row/column is cropped."""
        av = _av()
        height, width = image.shape[-2:]
        even_h, even_w = max(2, height - height % 2), max(2, width - width % 2)
        if (even_h, even_w) != (height, width) and not self._cropped_warned:
            warnings.warn(f"{self.path}: H.264 needs even sides; frames cropped from {width}x{height} to "
                          f"{even_w}x{even_h}", IecastWarning, stacklevel=2)
            self._cropped_warned = True
        if self.stream is None:
            self._open_video(even_w, even_h)
        elif (even_w, even_h) != (self.stream.width, self.stream.height):
            raise IecastError(f"frame {self.frames + 1} is {width}x{height} but the first frame was "
                              f"{self.stream.width}x{self.stream.height}; a video needs frames of one size")
        rgb = (image[0, :, :even_h, :even_w].clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = self.frames
        frame.time_base = self.stream.codec_context.time_base
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames += 1

    def write_audio(self, packet) -> None:
        if self.audio_out is None:
            return
        if self.stream is None:
            self.pending_audio.append(packet)
            return
        if self.resampler is None:
            packet.stream = self.audio_out
            self.container.mux(packet)
            return
        for frame in packet.decode():
            for resampled in self.resampler.resample(frame):
                for out in self.audio_out.encode(resampled):
                    self.container.mux(out)

    def finish(self) -> Path:
        if self.stream is None:
            raise IecastError(f"{self.path}: the source had no frames; nothing written")
        for packet in self.stream.encode(None):
            self.container.mux(packet)
        if self.resampler is not None:
            for packet in self.audio_out.encode(None):
                self.container.mux(packet)
        self.container.close()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        try:
            self.container.close()
        except Exception:  # the file is being thrown away; closing errors do not matter
            pass
        if self.tmp.exists():
            self.tmp.unlink()


class FolderWriter:
    """Frames written as frame_000001.<ext>, each atomically."""

    def __init__(self, folder: Path, ext: str = ".png") -> None:
        self.folder, self.ext, self.frames, self.written = folder, ext, 0, []

    def write_frame(self, image: torch.Tensor) -> None:
        self.frames += 1
        self.written.append(save_image(tensor_to_pil(image), self.folder / f"frame_{self.frames:06d}{self.ext}"))

    def write_audio(self, packet) -> None:
        """Frame folders have no sound."""

    def finish(self) -> Path:
        if not self.frames:
            raise IecastError(f"{self.folder}: the source had no frames; nothing written")
        return self.folder

    def abort(self) -> None:
        for file in self.written:
            file.unlink(missing_ok=True)


def stylize_video(stylizer: Stylizer, source: str | os.PathLike,
                  style: ImageLike | PreparedStyle | Sequence[ImageLike | PreparedStyle],
                  output: str | os.PathLike, *, alpha: float = 1.0, style_weights: Sequence[float] | None = None,
                  masks: Sequence[ImageLike] | None = None, preserve_color: str | None = None,
                  content_size: int | None = None, style_size: StyleSize = "auto",
                  tile: int | str | None = "auto", fps: float | None = None, crf: int = 18,
                  frame_ext: str | None = None, progress: bool = True,
                  max_pixels: int | None = MAX_PIXELS) -> Path:
    """Stylize every frame of a video file or frame folder into a video file or frame folder.

    `output` ending in .mp4/.mkv/.mov is a video (H.264, same frame rate, audio copied);
    anything else is a folder of frames (`frame_ext`, default .png). Several styles are blended
    (equal weights unless `style_weights`); masks apply to every frame. With
    `preserve_color='histogram'` the styles take the first frame's colours. `fps` sets the rate
    of a frame folder (default 25) or overrides a video's.
    """
    from tqdm.auto import tqdm

    styles = list(style) if isinstance(style, (list, tuple)) else [style]
    if not 0.0 <= alpha <= 1.0:
        raise IecastError(f"alpha must be in [0, 1] (got {alpha})")
    if masks is not None and len(masks) != len(styles):
        raise IecastError(f"got {len(masks)} masks for {len(styles)} styles; give one mask per style")
    if masks is not None and style_weights is not None:
        raise IecastError("give either style weights or masks, not both")
    weights = None if masks is not None else normalise_style_weights(style_weights, len(styles))
    output = Path(output)
    as_video = output.suffix.lower() in VIDEO_OUTPUT_EXTENSIONS
    if output.suffix and not as_video and not output.is_dir():
        raise IecastError(f"{output}: unsupported video format {output.suffix}; use "
                          f"{', '.join(VIDEO_OUTPUT_EXTENSIONS)} or a folder for frames")
    ext = (frame_ext if frame_ext.startswith(".") else f".{frame_ext}") if frame_ext else ".png"
    if ext.lower() not in FRAME_EXTENSIONS:
        raise IecastError(f"unsupported frame format {ext}; use one of {', '.join(FRAME_EXTENSIONS)}")
    if not as_video and output.is_dir() and any(output.glob("frame_*")):
        raise IecastError(f"{output}: already holds frame_* files; choose an empty folder")
    source_frames = FrameSource(source, fps, max_pixels)
    writer = None
    mask_maps = None
    try:
        histogram = preserve_color == "histogram"
        prepared = None if histogram else [stylizer.prepare_style(s, style_size, None, max_pixels) for s in styles]
        writer = VideoWriter(output, source_frames.fps, source_frames.audio, crf) if as_video \
            else FolderWriter(output, ext)
        with tqdm(total=source_frames.count, desc="video", unit="frame", disable=not progress or None) as bar:
            for kind, item in source_frames.items():
                if kind == "audio":
                    writer.write_audio(item)
                    continue
                frame = resize_shorter_side(item, content_size)
                if prepared is None:
                    prepared = [stylizer.prepare_style(s, style_size, frame, max_pixels) for s in styles]
                if masks is not None and mask_maps is None:
                    size = tuple(frame.shape[-2:])
                    mask_maps = torch.cat([load_mask(m, size, f"mask {i + 1}") for i, m in enumerate(masks)])
                out = stylizer.stylize(frame, prepared, alpha, style_weights=weights, masks=mask_maps,
                                       preserve_color="luminance" if preserve_color == "luminance" else None,
                                       style_size=style_size, tile=tile)
                writer.write_frame(out.cpu())
                bar.update(1)
        result = writer.finish()
        writer = None
        return result
    finally:
        source_frames.close()
        if writer is not None:
            writer.abort()
