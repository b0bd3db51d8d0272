"""Reading and writing videos (PyAV) and frame folders, one frame at a time.

`FrameSource` yields the frames (and audio packets) of a video file or an image folder;
`VideoWriter` writes H.264 (yuv420p) to a temporary file renamed at the end, copying the audio
when the container can hold it and re-encoding it to AAC otherwise; `FolderWriter` writes
frame_000001.<ext> files. Either way a failed or killed run leaves nothing half-written behind:
its leftovers are recognised by an unlocked lock file and removed by the next run.
"""
from __future__ import annotations

import os
import re
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from iecast.errors import IecastError
from iecast.images import MAX_PIXELS, over_pixel_limit, save_image, tensor_to_pil
from iecast.inference.inputs import images_in_folder, load_as_tensor
from iecast.inference.leftovers import is_abandoned, lock_file, remove_leftovers, unlock_file
from iecast.inference.options import IecastWarning

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


def _duration_from_tag(stream) -> float | None:
    """Seconds in a stream's DURATION tag (Matroska writes one per stream), or None."""
    tag = (stream.metadata or {}).get("DURATION") or (stream.metadata or {}).get("duration")
    match = re.fullmatch(r"(\d+):(\d\d):(\d\d(?:\.\d+)?)", tag or "")
    if not match:
        return None
    return int(match.group(1)) * 3600 + int(match.group(2)) * 60 + float(match.group(3))


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
            self.size = None  # each frame is checked as it is read
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
        width, height = self.video.codec_context.width, self.video.codec_context.height
        self.size = (width, height) if width and height else None
        if max_pixels is not None and width * height > max_pixels:
            self.close()
            raise over_pixel_limit(f"{self.path}: frames", width, height, max_pixels)
        rate = self.video.average_rate or self.video.guessed_rate or self.video.base_rate
        native = Fraction(rate) if rate else None
        self.fps = Fraction(fps).limit_denominator(1001) if fps else native or DEFAULT_FOLDER_FPS
        # `declared`: the frame count the file states for its video stream (checked at the end);
        # `count` also falls back on the container's duration, for the progress bar only.
        self.declared: int | None = int(self.video.frames) or None
        self.declared_exact = self.declared is not None
        seconds = _duration_from_tag(self.video)
        if self.declared is None and self.video.duration and self.video.time_base:
            seconds = float(self.video.duration * self.video.time_base)
        if self.declared is None and seconds and native:
            self.declared = round(seconds * native)
        self.count = self.declared
        if self.count is None and self.container.duration and native:
            self.count = round(self.container.duration / 1e6 * native)
        self.decoded = 0
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
                        if self.max_pixels is not None and frame.width * frame.height > self.max_pixels:
                            raise over_pixel_limit(f"{self.path}: frame {self.decoded + 1}", frame.width, frame.height,
                                                   self.max_pixels)
                        rgb = frame.to_ndarray(format="rgb24")
                        self.decoded += 1
                        yield "frame", torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).float().div_(255)
                elif packet.dts is not None:
                    yield "audio", packet
        except av.FFmpegError as exc:
            raise IecastError(f"{self.path}: damaged video after {self.decoded} frames "
                              f"({str(exc).splitlines()[0][:100]})") from exc
        self._check_complete()

    def _check_complete(self) -> None:
        """Warn when the file ended before the frames its video stream declares (a truncated file).

        Counts derived from a duration may be off by one frame, so those need a shortfall of two."""
        if self.declared is None or not self.decoded:
            return
        slack = 0 if self.declared_exact else 1
        if self.decoded < self.declared - slack:
            warnings.warn(f"{self.path}: the input ended early: decoded {self.decoded} of {self.declared} frames "
                          f"the file declares (truncated or damaged?); the output has {self.decoded} frames",
                          IecastWarning, stacklevel=3)


class VideoWriter:
    """H.264 video (plus the source's audio) written to a temporary file, renamed on `finish`."""

    def __init__(self, path: Path, fps: Fraction, audio=None, crf: int = 18) -> None:
        av = _av()
        if path.suffix.lower() not in VIDEO_OUTPUT_EXTENSIONS:
            raise IecastError(f"{path}: unsupported video format {path.suffix or '(none)'}; "
                              f"use {', '.join(VIDEO_OUTPUT_EXTENSIONS)} or a folder for frames")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.fps, self.crf = path, fps, crf
        remove_leftovers(re.compile(rf"\.{re.escape(path.stem)}\.(?P<pid>\d+)\.tmp{re.escape(path.suffix)}"),
                         path.parent)
        self.tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
        self._lock = lock_file(self.tmp)  # held until finish/abort; a SIGKILLed run's file is then unlocked
        try:
            self.container = av.open(str(self.tmp), "w")
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            unlock_file(self._lock)
            raise
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
        unlock_file(self._lock)
        self._lock = None
        return self.path

    def abort(self) -> None:
        try:
            self.container.close()
        except Exception:  # the file is being thrown away; closing errors do not matter
            pass
        if self.tmp.exists():
            self.tmp.unlink()
        unlock_file(self._lock)
        self._lock = None


FRAME_NAME = re.compile(r"frame_\d{6}\.[A-Za-z]+")
PARTIAL_MARKER = re.compile(r"\.iecast-partial\.(?P<pid>\d+)")
FRAME_TMP = re.compile(r"\.frame_\d{6}\.[A-Za-z]+\.(?P<pid>\d+)\.tmp")


def remove_partial_frames(folder: Path) -> int:
    """Frames left in `folder` by a run that was killed (its marker file is unlocked): removed, with
    their temporary files. Returns how many frames were removed."""
    if not folder.is_dir():
        return 0
    remove_leftovers(FRAME_TMP, folder)
    markers = [p for p in folder.iterdir() if PARTIAL_MARKER.fullmatch(p.name)]
    removed = 0
    for marker in markers:
        if not is_abandoned(marker, int(PARTIAL_MARKER.fullmatch(marker.name).group("pid"))):
            continue
        for name in marker.read_text(encoding="utf-8").split():
            if FRAME_NAME.fullmatch(name) and (folder / name).is_file():
                (folder / name).unlink()
                removed += 1
        marker.unlink(missing_ok=True)
    return removed


class FolderWriter:
    """Frames written as frame_000001.<ext>, each atomically.

    While the run lasts, a locked hidden marker (.iecast-partial.<pid>) lists the frames written so
    far; a killed run's frames are removed by the next run into the same folder."""

    def __init__(self, folder: Path, ext: str = ".png") -> None:
        self.folder, self.ext, self.frames, self.written = folder, ext, 0, []
        self.created = not folder.exists()
        folder.mkdir(parents=True, exist_ok=True)
        self.marker = folder / f".iecast-partial.{os.getpid()}"
        self._lock = lock_file(self.marker)
        self._marker_file = open(self.marker, "a", encoding="utf-8")

    def _close_marker(self) -> None:
        if self._marker_file is not None:
            self._marker_file.close()
            self._marker_file = None
            self.marker.unlink(missing_ok=True)
            unlock_file(self._lock)
            self._lock = None

    def write_frame(self, image: torch.Tensor) -> None:
        self.frames += 1
        name = f"frame_{self.frames:06d}{self.ext}"
        self._marker_file.write(name + "\n")  # listed before it exists: a kill mid-write leaves nothing unlisted
        self._marker_file.flush()
        self.written.append(save_image(tensor_to_pil(image), self.folder / name))

    def write_audio(self, packet) -> None:
        """Frame folders have no sound."""

    def finish(self) -> Path:
        if not self.frames:
            raise IecastError(f"{self.folder}: the source had no frames; nothing written")
        self._close_marker()
        return self.folder

    def abort(self) -> None:
        for file in self.written:
            file.unlink(missing_ok=True)
        self._close_marker()
        if self.created:
            try:
                self.folder.rmdir()  # only if empty
            except OSError:
                pass
