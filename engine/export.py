"""Animation and contact-sheet export: morph sequences and jitter sheets to disk.

Formats (chosen by the destination's suffix):

- ``.mp4``: H.264 (``libx264``, yuv420p, CRF) through PyAV; MPEG-4 Part 2 when the
  installed FFmpeg has no ``libx264``.
- ``.gif``: Pillow, one palette shared by all frames (colours do not flicker from frame
  to frame), frame time in whole hundredths of a second and at least 20 ms.
- ``.webp``: Pillow animated WebP, lossy (``quality``) or lossless.
- ``.png``: Pillow APNG (lossless).
- no suffix, or an existing folder: one ``frame_0001.png`` per frame.

Every file is written to a hidden temporary name in the destination folder and moved into
place only when complete; a cancelled or failed export leaves nothing behind. The engine
stays free of Qt: :func:`export_animation` is a generator of
:class:`engine.events.Progress` that checks a ``threading.Event`` between frames, like the
DGP loop.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import threading
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from engine.errors import BadInputError
from engine.events import Progress
from engine.files import commit_temporary, create_temporary, fsync_folder, temporary_name

__all__ = [
    "EASING_KINDS",
    "AnimationOptions",
    "ease",
    "export_animation",
    "timeline_lambdas",
    "write_contact_sheet",
]

EASING_KINDS = ("linear", "ease-in-out", "ease-in", "ease-out")

_ANIMATION_FORMATS = {".gif": "GIF", ".mp4": "MP4", ".webp": "WebP", ".png": "APNG"}
_FRAME_FOLDER = "PNG frame folder"
_FRAME_FILE_PATTERN = re.compile(r"frame_\d{4,}\.png")
_GIF_MIN_FRAME_MS = 20          # browsers slow shorter GIF frames down to ~100 ms
_GIF_PALETTE_SAMPLE_FRAMES = 16  # frames that vote for the shared GIF palette
_GIF_PALETTE_SAMPLE_PIXELS = 1 << 20
_FALLBACK_BITS_PER_PIXEL = 0.25  # MPEG-4 Part 2 bit rate per pixel and frame: visually clean


# --------------------------------------------------------------------------------------
# Options


@dataclass(frozen=True)
class AnimationOptions:
    """How :func:`export_animation` writes a sequence.

    Attributes
    ----------
    fps : float
        Frames per second, > 0 and at most 240. GIF rounds the frame time to 10 ms
        (minimum 20 ms); WebP and APNG to 1 ms; MP4 stores it exactly as a fraction.
    loop : bool
        Play forever (GIF, WebP, APNG) instead of once. MP4 has no loop flag.
    ping_pong : bool
        Append the frames in reverse without repeating the two end frames, so a looping
        A→B sequence plays A→B→A smoothly: N frames become 2N−2.
    size : int or None
        Side of the square output in pixels (Lanczos resampling, up or down); None keeps
        the frames' own size. Needs square frames.
    crf : int
        MP4 constant rate factor, 0 (lossless) to 51; 18 is visually lossless.
    quality : int
        Lossy WebP quality, 0 to 100.
    lossless : bool
        WebP: encode losslessly (``quality`` then sets the compression effort).
    """

    fps: float = 12.0
    loop: bool = True
    ping_pong: bool = False
    size: int | None = None
    crf: int = 18
    quality: int = 90
    lossless: bool = False

    def __post_init__(self) -> None:
        if (
            isinstance(self.fps, bool)
            or not isinstance(self.fps, (int, float, Fraction))
            or not math.isfinite(self.fps)
            or not 0 < self.fps <= 240
        ):
            raise BadInputError(f"fps must be a number above 0 and at most 240, got {self.fps!r}.")
        if self.size is not None and (not _is_int(self.size) or self.size < 1):
            raise BadInputError(f"size must be a positive whole number of pixels or None, got {self.size!r}.")
        if not _is_int(self.crf) or not 0 <= self.crf <= 51:
            raise BadInputError(f"crf must be a whole number from 0 to 51, got {self.crf!r}.")
        if not _is_int(self.quality) or not 0 <= self.quality <= 100:
            raise BadInputError(f"quality must be a whole number from 0 to 100, got {self.quality!r}.")


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


# --------------------------------------------------------------------------------------
# Easing and morph timelines


def ease(t: float, kind: str) -> float:
    """Map linear time to eased time.

    Parameters
    ----------
    t : float
        Position in the segment, in [0, 1].
    kind : str
        ``"linear"``; ``"ease-in-out"`` (smoothstep 3t² − 2t³: starts and stops gently);
        ``"ease-in"`` (t², starts gently); ``"ease-out"`` (1 − (1 − t)², stops gently).

    Returns
    -------
    float
        Eased position in [0, 1], non-decreasing in ``t``, with ``ease(0) == 0`` and
        ``ease(1) == 1`` exactly.
    """
    if isinstance(t, bool) or not isinstance(t, (int, float, np.floating, np.integer)) or not 0.0 <= t <= 1.0:
        raise BadInputError(f"the easing position t must be a number from 0 to 1, got {t!r}.")
    t = float(t)
    if kind == "linear":
        return t
    if kind == "ease-in-out":
        return t * t * (3.0 - 2.0 * t)
    if kind == "ease-in":
        return t * t
    if kind == "ease-out":
        return 1.0 - (1.0 - t) * (1.0 - t)
    raise BadInputError(f"easing {kind!r} is unknown; use one of {', '.join(EASING_KINDS)}.")


def timeline_lambdas(
    keyframe_count: int, frames: int, *, easing: str | Sequence[str] = "linear"
) -> list[tuple[int, float]]:
    """Sample a morph through K keyframes (A→B→C…) at N evenly spaced times.

    Parameters
    ----------
    keyframe_count : int
        K ≥ 2 keyframes, hence K − 1 segments of equal duration.
    frames : int
        N ≥ 2 output frames, evenly spaced in time from the first keyframe to the last.
    easing : str or sequence of str, keyword-only
        One easing kind (see :func:`ease`) for every segment, or one per segment (K − 1).

    Returns
    -------
    list of (int, float)
        N pairs ``(segment, lambda)``: segment index in [0, K − 2] and the eased
        interpolation weight in [0, 1] inside it (0 = the segment's first keyframe). The
        first pair is ``(0, 0.0)``, the last ``(K - 2, 1.0)``. A frame that falls exactly on
        an inner keyframe is reported as the start ``(k, 0.0)`` of the next segment; inner
        keyframes are hit exactly only when K − 1 divides N − 1.
    """
    if not _is_int(keyframe_count) or keyframe_count < 2:
        raise BadInputError(f"a morph needs at least 2 keyframes, got {keyframe_count!r}.")
    if not _is_int(frames) or frames < 2:
        raise BadInputError(f"a morph needs at least 2 frames, got {frames!r}.")
    segments = int(keyframe_count) - 1
    if isinstance(easing, str):
        kinds = [easing] * segments
    else:
        kinds = list(easing)
        if len(kinds) != segments:
            raise BadInputError(
                f"easing lists {len(kinds)} kinds but {keyframe_count} keyframes make {segments} segments."
            )
    for kind in kinds:
        if kind not in EASING_KINDS:
            raise BadInputError(f"easing {kind!r} is unknown; use one of {', '.join(EASING_KINDS)}.")

    last = int(frames) - 1
    timeline: list[tuple[int, float]] = []
    for index in range(last + 1):
        # Integer arithmetic keeps keyframe hits and both ends exact (no 0.9999999 lambdas).
        segment, remainder = divmod(index * segments, last)
        if segment == segments:  # the final frame ends the last segment
            segment, local = segments - 1, 1.0
        else:
            local = remainder / last
        timeline.append((segment, ease(local, kinds[segment])))
    return timeline


# --------------------------------------------------------------------------------------
# Frame checks


def _check_frame(frame: object, number: int, *, noun: str = "frame") -> np.ndarray:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        shape = getattr(frame, "shape", None)
        dtype = getattr(frame, "dtype", type(frame).__name__)
        raise BadInputError(
            f"{noun} {number} must be an H×W×3 uint8 array, got shape {shape} and dtype {dtype}."
        )
    if frame.shape[0] < 1 or frame.shape[1] < 1:
        raise BadInputError(f"{noun} {number} is empty (shape {frame.shape}).")
    return np.ascontiguousarray(frame)


def _resized(frame: np.ndarray, size: int | None, number: int) -> np.ndarray:
    if size is None or frame.shape[:2] == (size, size):
        return frame
    if frame.shape[0] != frame.shape[1]:
        raise BadInputError(
            f"frame {number} is {frame.shape[1]}×{frame.shape[0]}, not square, so it cannot be "
            f"scaled to the square size {size} without distortion."
        )
    image = Image.fromarray(frame, mode="RGB").resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(image)


# --------------------------------------------------------------------------------------
# Destinations


def _animation_kind(path: Path) -> str:
    if path.is_dir() or path.suffix == "":
        return _FRAME_FOLDER
    kind = _ANIMATION_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise BadInputError(
            f"{path} has the unsupported suffix {path.suffix!r}; use .gif, .mp4, .webp, .png "
            "or a folder name without a suffix."
        )
    return kind


def _is_previous_frame_folder(folder: Path) -> bool:
    return all(entry.is_file() and _FRAME_FILE_PATTERN.fullmatch(entry.name) for entry in folder.iterdir())


def _check_destination(path: Path, kind: str, *, overwrite: bool) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise BadInputError(f"{path} cannot be written because the folder {folder} does not exist.")
    if kind == _FRAME_FOLDER:
        if path.exists() and not path.is_dir():
            raise BadInputError(f"{path} is a file, so PNG frames cannot be written into it as a folder.")
        if path.is_dir() and any(path.iterdir()):
            if not overwrite:
                raise BadInputError(
                    f"{path} is a folder that is not empty and overwriting was not requested."
                )
            if not _is_previous_frame_folder(path):
                # Overwriting replaces the whole folder: only ever do that to our own output.
                raise BadInputError(
                    f"{path} holds files other than frame_NNNN.png, so it is not replaced "
                    "even with overwrite."
                )
        return
    if path.is_dir():
        raise BadInputError(f"{path} is a folder, not a file name.")
    if path.exists() and not overwrite:
        raise BadInputError(f"{path} already exists and overwriting was not requested.")


def _temporary_file(path: Path) -> Path:
    # A recognisable name (cleaned after a crash) and the umask's mode, like the final file.
    return create_temporary(path)


def _commit_file(temporary: Path, path: Path, *, overwrite: bool) -> None:
    """Move a finished temporary file into place (never clobbering without ``overwrite``)."""
    commit_temporary(temporary, path, overwrite=overwrite)


def _commit_folder(temporary: Path, path: Path) -> None:
    """Move a finished temporary frame folder into place, replacing a previous export."""
    if not path.exists():
        os.rename(temporary, path)
        fsync_folder(path.parent if str(path.parent) else Path("."))
        return
    # A non-empty folder cannot be renamed over: move the old one aside first, so that a
    # failure at any point leaves either the old export or the new one under ``path``.
    aside = temporary_name(path)
    os.rename(path, aside)
    try:
        os.rename(temporary, path)
    except OSError:
        os.rename(aside, path)
        raise
    fsync_folder(path.parent if str(path.parent) else Path("."))
    shutil.rmtree(aside, ignore_errors=True)


# --------------------------------------------------------------------------------------
# Writers: add frames one by one, then finish; discard removes every trace.


class _Cancelled(Exception):
    """Raised inside a Pillow encoder's frame iterator to abandon the save."""


class _FrameFolderWriter:
    def __init__(self, path: Path, options: AnimationOptions, overwrite: bool) -> None:
        self.path = path
        self.temporary = temporary_name(path)
        self.temporary.mkdir()
        self.count = 0

    def add(self, frame: np.ndarray) -> None:
        self.count += 1
        Image.fromarray(frame, mode="RGB").save(
            self.temporary / f"frame_{self.count:04d}.png", format="PNG", compress_level=6
        )

    def finish(self, should_stop: threading.Event | None) -> bool:
        return not _stopped(should_stop)

    def commit(self) -> None:
        _commit_folder(self.temporary, self.path)

    def discard(self) -> None:
        shutil.rmtree(self.temporary, ignore_errors=True)


def _h264_available() -> bool:
    try:
        av.codec.Codec("libx264", "w")
    except (ValueError, av.FFmpegError):
        return False
    return True


def _even_by_edge(frame: np.ndarray) -> np.ndarray:
    # yuv420p subsamples chroma 2×2, so H.264 needs even sides; repeat the last row/column
    # rather than scaling, which would blur every pixel.
    pad_rows, pad_columns = frame.shape[0] % 2, frame.shape[1] % 2
    if not pad_rows and not pad_columns:
        return frame
    return np.pad(frame, ((0, pad_rows), (0, pad_columns), (0, 0)), mode="edge")


class _Mp4Writer:
    def __init__(self, path: Path, options: AnimationOptions, overwrite: bool) -> None:
        self.path = path
        self.options = options
        self.overwrite = overwrite
        self.temporary = _temporary_file(path)
        # The temporary name ends in .part, so the container format is named explicitly.
        self.container = av.open(str(self.temporary), mode="w", format="mp4")
        self.stream: av.VideoStream | None = None
        self.note = ""

    def _open_stream(self, width: int, height: int) -> av.VideoStream:
        # A fraction keeps 29.97 (30000/1001) or 12.5 exact in the container's time base.
        rate = Fraction(self.options.fps).limit_denominator(1001)
        if _h264_available():
            stream = self.container.add_stream(
                "libx264", rate=rate, options={"crf": str(self.options.crf), "preset": "medium"}
            )
        else:
            stream = self.container.add_stream("mpeg4", rate=rate)
            stream.bit_rate = max(500_000, int(width * height * float(rate) * _FALLBACK_BITS_PER_PIXEL))
            self.note = "libx264 is not available in this FFmpeg, so the MP4 uses MPEG-4 Part 2 video"
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        return stream

    def add(self, frame: np.ndarray) -> None:
        frame = _even_by_edge(frame)
        if self.stream is None:
            self.stream = self._open_stream(frame.shape[1], frame.shape[0])
        video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
        for packet in self.stream.encode(video_frame):
            self.container.mux(packet)

    def finish(self, should_stop: threading.Event | None) -> bool:
        if _stopped(should_stop):
            return False
        assert self.stream is not None
        # Without this flush the encoder's look-ahead frames (the last dozen or so) are lost.
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()
        return True

    def commit(self) -> None:
        _commit_file(self.temporary, self.path, overwrite=self.overwrite)

    def discard(self) -> None:
        try:
            self.container.close()
        except (OSError, ValueError, av.FFmpegError):
            pass  # the file is deleted next; a half-written trailer does not matter
        self.temporary.unlink(missing_ok=True)


class _PillowAnimationWriter:
    """GIF, WebP and APNG: Pillow encodes the whole sequence in one ``save`` call."""

    def __init__(self, path: Path, options: AnimationOptions, overwrite: bool, kind: str) -> None:
        self.path = path
        self.options = options
        self.overwrite = overwrite
        self.kind = kind
        self.frames: list[np.ndarray] = []
        self.temporary = _temporary_file(path)
        frame_ms = 1000.0 / options.fps
        if kind == "GIF":
            # GIF stores hundredths of a second.
            self.frame_ms = max(_GIF_MIN_FRAME_MS, 10 * round(frame_ms / 10))
        else:
            self.frame_ms = max(1, round(frame_ms))
        self.note = ""
        if abs(self.frame_ms - frame_ms) > 0.5:
            self.note = f"{kind} frame time is {self.frame_ms} ms ({1000 / self.frame_ms:g} fps)"

    def add(self, frame: np.ndarray) -> None:
        self.frames.append(frame)

    def _gif_frames(self, should_stop: threading.Event | None) -> Iterator[Image.Image]:
        # One palette for the whole sequence: per-frame palettes make flat colours shimmer
        # as the morph progresses. It is built by FASTOCTREE from frames spread over the
        # sequence, so colours that only appear near the end are still represented.
        count = len(self.frames)
        votes = min(count, _GIF_PALETTE_SAMPLE_FRAMES)
        picks = sorted({round(i * (count - 1) / max(1, votes - 1)) for i in range(votes)})
        height, width = self.frames[0].shape[:2]
        stride = max(1, math.ceil(math.sqrt(len(picks) * height * width / _GIF_PALETTE_SAMPLE_PIXELS)))
        sample = np.concatenate([self.frames[i][::stride, ::stride] for i in picks], axis=0)
        palette = Image.fromarray(sample, mode="RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE)
        for frame in self.frames:
            if _stopped(should_stop):
                raise _Cancelled
            image = Image.fromarray(frame, mode="RGB")
            yield image.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG)

    def finish(self, should_stop: threading.Event | None) -> bool:
        if _stopped(should_stop):
            return False
        try:
            self._save(should_stop)
        except _Cancelled:
            return False
        return not _stopped(should_stop)

    def _save(self, should_stop: threading.Event | None) -> None:
        if self.kind == "GIF":
            # Pillow's GIF writer pulls ``append_images`` lazily, so quantising (the slow
            # part) happens frame by frame inside ``save`` and a cancel lands within a frame.
            images = self._gif_frames(should_stop)
            first = next(images)
            rest: Iterable[Image.Image] = images
            settings: dict[str, object] = {"format": "GIF", "disposal": 2}
            if self.options.loop:
                settings["loop"] = 0  # no loop key at all = no NETSCAPE block = play once
        else:
            # The WebP and APNG writers read ``append_images`` more than once: give a list.
            first, *rest = [Image.fromarray(frame, mode="RGB") for frame in self.frames]
            # WebP and APNG count plays: 0 = forever, 1 = once.
            settings = {"loop": 0 if self.options.loop else 1}
            if self.kind == "WebP":
                settings.update(format="WEBP", method=4, lossless=self.options.lossless,
                                quality=self.options.quality)
            else:
                settings.update(format="PNG", compress_level=6)
        first.save(self.temporary, save_all=True, append_images=rest, duration=self.frame_ms, **settings)

    def commit(self) -> None:
        _commit_file(self.temporary, self.path, overwrite=self.overwrite)

    def discard(self) -> None:
        self.temporary.unlink(missing_ok=True)


def _stopped(should_stop: threading.Event | None) -> bool:
    return should_stop is not None and should_stop.is_set()


# --------------------------------------------------------------------------------------
# Animation export


def export_animation(
    frames: Iterable[np.ndarray] | Sequence[np.ndarray],
    path: str | os.PathLike[str],
    *,
    options: AnimationOptions = AnimationOptions(),
    total: int | None = None,
    should_stop: threading.Event | None = None,
    overwrite: bool = False,
) -> Generator[Progress, None, Path | None]:
    """Write a frame sequence as MP4, GIF, WebP, APNG or a folder of PNGs.

    Parameters
    ----------
    frames : iterable or sequence of np.ndarray
        H×W×3 uint8 sRGB frames in [0, 255], all the same size. May be a lazy iterator
        (frames rendered on demand); it is pulled one frame at a time.
    path : str or path-like
        ``.mp4``, ``.gif``, ``.webp`` or ``.png`` (APNG), any case; a path without a suffix
        or an existing folder receives ``frame_0001.png``, ``frame_0002.png``… The parent
        folder must exist.
    options : AnimationOptions, keyword-only
        Frame rate, looping, ping-pong, output size and encoder quality.
    total : int, optional, keyword-only
        Number of input frames when ``frames`` has no ``len`` (for progress only).
    should_stop : threading.Event, optional, keyword-only
        Checked before and after pulling each frame and between encoded frames. Once set,
        the export stops within one frame, deletes its temporary file or folder and the
        generator ends without raising; nothing is written at ``path``.
    overwrite : bool, keyword-only
        Replace an existing file, or a folder holding only ``frame_NNNN.png`` files (a
        previous export). Without it an existing file or non-empty folder is refused.

    Yields
    ------
    Progress
        ``done`` output frames of ``total`` (0 while the count is unknown); ``detail`` says
        what is happening and carries notes (GIF frame-time rounding, the MPEG-4 fallback).
        The last event has ``detail`` starting with "saved" and ``extra["path"]``.

    Returns
    -------
    Path or None
        As the generator's return value: ``path`` when written, None when cancelled.

    Raises
    ------
    BadInputError
        Immediately (when called) for an unknown suffix, a missing folder or an existing
        destination; while iterating for a bad or mismatched frame (naming its 1-based
        number), no frames at all, or a failed write.

    Notes
    -----
    MP4 and PNG frames are encoded as frames arrive. GIF, WebP and APNG are encoded by one
    Pillow call after the last frame (all frames are held in memory), as is any ping-pong
    sequence; during that call progress rests at ``total`` with detail "encoding …". The
    GIF, WebP and APNG encoders merge identical consecutive frames into one longer frame
    (playback time is unchanged, ``n_frames`` is smaller). MP4 sides are padded to even
    numbers by repeating the last row/column.
    """
    destination = Path(path)
    kind = _animation_kind(destination)
    _check_destination(destination, kind, overwrite=overwrite)
    if total is not None and (not _is_int(total) or total < 0):
        raise BadInputError(f"total must be a whole number of frames of at least 0, got {total!r}.")
    if not isinstance(options, AnimationOptions):
        raise BadInputError(f"options must be an AnimationOptions, got {type(options).__name__}.")
    # A 4-D array (N×H×W×3) is not a Sequence but has a length all the same.
    input_count = len(frames) if isinstance(frames, (Sequence, np.ndarray)) else total
    return _export(frames, destination, kind, options, input_count, should_stop, overwrite)


def _expected_outputs(input_count: int | None, ping_pong: bool) -> int:
    if input_count is None:
        return 0
    return 2 * input_count - 2 if ping_pong and input_count > 2 else input_count


def _pulled_until_stopped(
    frames: Iterable[np.ndarray], should_stop: threading.Event | None
) -> Iterator[object]:
    """Yield frames, checking the stop flag before each (possibly expensive) pull and after it."""
    iterator = iter(frames)
    while not _stopped(should_stop):
        try:
            frame = next(iterator)
        except StopIteration:
            return
        if _stopped(should_stop):
            return
        yield frame


def _export(
    frames: Iterable[np.ndarray],
    path: Path,
    kind: str,
    options: AnimationOptions,
    input_count: int | None,
    should_stop: threading.Event | None,
    overwrite: bool,
) -> Generator[Progress, None, Path | None]:
    expected = _expected_outputs(input_count, options.ping_pong)
    writer: _FrameFolderWriter | _Mp4Writer | _PillowAnimationWriter
    try:
        if kind == _FRAME_FOLDER:
            writer = _FrameFolderWriter(path, options, overwrite)
        elif kind == "MP4":
            writer = _Mp4Writer(path, options, overwrite)
        else:
            writer = _PillowAnimationWriter(path, options, overwrite, kind)
    except (OSError, av.FFmpegError) as error:
        raise BadInputError(f"{path} could not be written ({error}).") from error
    committed = False
    try:
        kept: list[np.ndarray] = []  # the forward frames, for the ping-pong return trip
        first_shape: tuple[int, ...] | None = None
        written = 0
        for number, raw in enumerate(_pulled_until_stopped(frames, should_stop), start=1):
            frame = _check_frame(raw, number)
            if first_shape is None:
                first_shape = frame.shape
            elif frame.shape != first_shape:
                raise BadInputError(
                    f"frame {number} is {frame.shape[1]}×{frame.shape[0]} but frame 1 is "
                    f"{first_shape[1]}×{first_shape[0]}; all frames must be the same size."
                )
            frame = _resized(frame, options.size, number)
            writer.add(frame)
            written += 1
            if options.ping_pong:
                kept.append(frame)
            yield Progress(written, expected and max(expected, written), detail=f"frame {written}")
        if _stopped(should_stop):
            return None
        if written == 0:
            raise BadInputError(f"there are no frames to write to {path}.")
        for frame in kept[-2:0:-1]:
            if _stopped(should_stop):
                return None
            writer.add(frame)
            written += 1
            yield Progress(written, expected and max(expected, written), detail=f"frame {written}")
        if isinstance(writer, _PillowAnimationWriter):
            detail = f"encoding {kind}" + (f"; {writer.note}" if writer.note else "")
            yield Progress(written, written, detail=detail)
        if not writer.finish(should_stop):
            return None
        writer.commit()
        committed = True
        note = getattr(writer, "note", "")
        detail = f"saved {path}" + (f"; {note}" if note else "")
        yield Progress(written, written, detail=detail, extra={"path": str(path), "format": kind})
        return path
    except (OSError, av.FFmpegError) as error:
        raise BadInputError(f"{path} could not be written ({error}).") from error
    finally:
        if not committed:
            writer.discard()


# --------------------------------------------------------------------------------------
# Contact sheets


def _fitted_label(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
                  width: int) -> str:
    # Long class names ("German shepherd, German shepherd dog, ...") would run into the
    # neighbouring cell: shorten them with an ellipsis instead.
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…" if text else ""


def write_contact_sheet(
    images: Sequence[np.ndarray],
    path: str | os.PathLike[str],
    *,
    columns: int,
    padding: int = 2,
    labels: Sequence[str] | None = None,
    background: tuple[int, int, int] = (255, 255, 255),
    overwrite: bool = False,
) -> Path:
    """Lay images out in a grid and write it as one PNG, JPEG or WebP.

    Parameters
    ----------
    images : sequence of np.ndarray
        H×W×3 uint8 sRGB images in [0, 255]. Cells take the largest height and width;
        smaller images are centred in their cell.
    path : str or path-like
        ``.png``, ``.jpg``/``.jpeg`` or ``.webp``; written atomically (see
        :func:`engine.imageio.save_image`).
    columns : int, keyword-only
        Cells per row, ≥ 1; the row count follows from the number of images.
    padding : int, keyword-only
        Pixels of background around and between cells, ≥ 0.
    labels : sequence of str, optional, keyword-only
        One caption per image, drawn under its cell in Pillow's default font (shortened
        with "…" when wider than the cell).
    background : tuple of 3 int, keyword-only
        RGB in [0, 255] for padding and label strips.
    overwrite : bool, keyword-only
        Replace an existing file.

    Returns
    -------
    Path
        ``path``.
    """
    images = list(images)
    if not images:
        raise BadInputError(f"there are no images to lay out in {path}.")
    images = [_check_frame(image, number, noun="image") for number, image in enumerate(images, start=1)]
    if not _is_int(columns) or columns < 1:
        raise BadInputError(f"columns must be a whole number of at least 1, got {columns!r}.")
    if not _is_int(padding) or padding < 0:
        raise BadInputError(f"padding must be a whole number of pixels of at least 0, got {padding!r}.")
    if (
        not isinstance(background, (tuple, list))
        or len(background) != 3
        or not all(_is_int(value) and 0 <= value <= 255 for value in background)
    ):
        raise BadInputError(f"background must be three whole numbers from 0 to 255, got {background!r}.")
    if labels is not None:
        labels = list(labels)
        if len(labels) != len(images) or not all(isinstance(label, str) for label in labels):
            raise BadInputError(
                f"labels must be {len(images)} strings, one per image, got {len(labels)} items."
            )

    cell_height = max(image.shape[0] for image in images)
    cell_width = max(image.shape[1] for image in images)
    font = ImageFont.load_default(size=min(24, max(10, cell_width // 12)))
    label_height = 0
    if labels is not None and any(labels):
        ascent, descent = font.getmetrics() if hasattr(font, "getmetrics") else (11, 0)
        label_height = ascent + descent + padding
    columns = min(int(columns), len(images))
    rows = math.ceil(len(images) / columns)
    pitch_x, pitch_y = cell_width + padding, cell_height + label_height + padding
    sheet = Image.new("RGB", (padding + columns * pitch_x, padding + rows * pitch_y), tuple(background))
    draw = ImageDraw.Draw(sheet)
    luminance = 0.299 * background[0] + 0.587 * background[1] + 0.114 * background[2]
    ink = (0, 0, 0) if luminance > 127 else (255, 255, 255)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        left, top = padding + column * pitch_x, padding + row * pitch_y
        offset_x, offset_y = (cell_width - image.shape[1]) // 2, (cell_height - image.shape[0]) // 2
        sheet.paste(Image.fromarray(image, mode="RGB"), (left + offset_x, top + offset_y))
        if label_height and labels is not None and labels[index]:
            text = _fitted_label(draw, labels[index], font, cell_width)
            text_width = draw.textlength(text, font=font)
            text_origin = (left + (cell_width - text_width) / 2, top + cell_height + padding)
            draw.text(text_origin, text, fill=ink, font=font)
    from engine.imageio import save_image  # torch-free import of this module for the GUI's easing

    return save_image(np.asarray(sheet), path, overwrite=overwrite)
