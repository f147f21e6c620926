"""Animation and contact-sheet export: formats decode back with the right frames and timing."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image, ImageSequence

from engine import export
from engine.errors import BadInputError
from engine.events import Progress
from engine.export import AnimationOptions, ease, export_animation, timeline_lambdas, write_contact_sheet

FRAME_COUNT = 6


def make_frames(count: int = FRAME_COUNT, *, height: int = 32, width: int = 32) -> list[np.ndarray]:
    """Distinct frames: a flat colour that changes per frame plus a moving bright square."""
    frames = []
    for index in range(count):
        frame = np.empty((height, width, 3), np.uint8)
        frame[:] = (20 + 35 * index, 200 - 30 * index, 90)
        frame[2:8, 2 + index: 8 + index] = 255
        frames.append(frame)
    return frames


def read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def run(generator) -> tuple[list[Progress], object]:
    """Drain an export generator; return its events and its return value."""
    events = []
    while True:
        try:
            events.append(next(generator))
        except StopIteration as stop:
            return events, stop.value


def stopping_iterator(
    frames: list[np.ndarray], event: threading.Event, *, after: int, pulled: list[int]
) -> Iterator[np.ndarray]:
    """Yield frames; when asked for frame ``after`` (0-based), set ``event`` first (a user's click)."""
    for index, frame in enumerate(frames):
        if index == after:
            event.set()
        pulled.append(index)
        yield frame


# --------------------------------------------------------------------------------------
# MP4


def test_libx264_encoder_is_available():
    assert av.codec.Codec("libx264", "w").name == "libx264"


def decode_mp4(path: Path) -> tuple[list[np.ndarray], Fraction, str]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        return frames, stream.average_rate, stream.codec_context.name


def test_mp4_decodes_to_the_same_frames_size_and_rate(tmp_path):
    frames = make_frames()
    destination = tmp_path / "morph.mp4"
    events, returned = run(export_animation(frames, destination, options=AnimationOptions(fps=12)))
    assert returned == destination and sorted(p.name for p in tmp_path.iterdir()) == ["morph.mp4"]
    decoded, rate, codec = decode_mp4(destination)
    assert codec == "h264"
    assert len(decoded) == FRAME_COUNT
    assert decoded[0].shape == (32, 32, 3)
    assert rate == 12
    for original, back in zip(frames, decoded):
        # The flat background survives CRF 18 closely; frames are not mixed up or dropped.
        assert np.abs(back[20:, :, :].astype(int) - original[20:, :, :]).mean() < 6
    assert [e.done for e in events if e.detail.startswith("frame")] == list(range(1, FRAME_COUNT + 1))
    assert all(e.total == FRAME_COUNT for e in events)
    assert events[-1].detail.startswith("saved") and events[-1].extra["path"] == str(destination)


def test_mp4_keeps_a_fractional_frame_rate_exact(tmp_path):
    destination = tmp_path / "slow.mp4"
    run(export_animation(make_frames(), destination, options=AnimationOptions(fps=12.5)))
    _, rate, _ = decode_mp4(destination)
    assert rate == Fraction(25, 2)


def test_mp4_pads_odd_sides_to_even_by_repeating_the_edge(tmp_path):
    frames = make_frames(height=31, width=33)
    for frame in frames:
        frame[-1, :] = (250, 10, 10)  # a red last row and a blue last column survive padding
        frame[:, -1] = (10, 10, 250)
    destination = tmp_path / "odd.mp4"
    run(export_animation(frames, destination))
    decoded, _, _ = decode_mp4(destination)
    assert decoded[0].shape == (32, 34, 3)
    assert decoded[0][-1, 10, 0] > 180 and decoded[0][10, -1, 2] > 180


def test_mp4_falls_back_to_mpeg4_without_libx264(tmp_path, monkeypatch):
    monkeypatch.setattr(export, "_h264_available", lambda: False)
    destination = tmp_path / "fallback.mp4"
    events, _ = run(export_animation(make_frames(), destination))
    decoded, rate, codec = decode_mp4(destination)
    assert codec == "mpeg4" and len(decoded) == FRAME_COUNT and rate == 12
    assert "libx264" in events[-1].detail


# --------------------------------------------------------------------------------------
# GIF, WebP, APNG


def test_gif_frames_duration_and_loop(tmp_path):
    destination = tmp_path / "morph.gif"
    run(export_animation(make_frames(), destination, options=AnimationOptions(fps=12)))
    with Image.open(destination) as gif:
        assert sum(1 for _ in ImageSequence.Iterator(gif)) == FRAME_COUNT
        assert gif.info["duration"] == 80  # 1000/12 = 83.3 ms, stored in hundredths
        assert gif.info["loop"] == 0
        gif.seek(3)
        back = np.asarray(gif.convert("RGB"))
    assert np.abs(back[20:].astype(int) - make_frames()[3][20:]).max() < 12


def test_gif_play_once_has_no_loop_block_and_fast_frames_are_clamped(tmp_path):
    destination = tmp_path / "once.gif"
    options = AnimationOptions(fps=100, loop=False)
    events, _ = run(export_animation(make_frames(), destination, options=options))
    with Image.open(destination) as gif:
        assert "loop" not in gif.info
        assert gif.info["duration"] == 20
    assert any("20 ms" in event.detail for event in events)


def test_webp_frames_duration_and_lossless_pixels(tmp_path):
    frames = make_frames()
    destination = tmp_path / "morph.webp"
    run(export_animation(frames, destination, options=AnimationOptions(fps=12, lossless=True)))
    with Image.open(destination) as webp:
        assert webp.n_frames == FRAME_COUNT
        assert webp.info["loop"] == 0
        webp.seek(4)
        webp.load()  # WebP reports a frame's duration once that frame is decoded
        assert webp.info["duration"] == 83
        assert np.array_equal(np.asarray(webp.convert("RGB")), frames[4])


def test_webp_lossy_plays_once(tmp_path):
    destination = tmp_path / "once.webp"
    run(export_animation(make_frames(), destination, options=AnimationOptions(loop=False, quality=50)))
    with Image.open(destination) as webp:
        assert webp.n_frames == FRAME_COUNT and webp.info["loop"] == 1


def test_apng_frame_count_and_lossless_pixels(tmp_path):
    frames = make_frames()
    destination = tmp_path / "morph.png"
    run(export_animation(frames, destination, options=AnimationOptions(fps=10)))
    with Image.open(destination) as apng:
        assert apng.n_frames == FRAME_COUNT
        apng.seek(2)
        assert apng.info["duration"] == 100
        assert np.array_equal(np.asarray(apng.convert("RGB")), frames[2])


# --------------------------------------------------------------------------------------
# PNG frame folders and ping-pong


def test_frame_folder_for_a_path_without_suffix(tmp_path):
    frames = make_frames()
    destination = tmp_path / "frames"
    run(export_animation(iter(frames), destination, total=FRAME_COUNT))
    names = sorted(p.name for p in destination.iterdir())
    assert names == [f"frame_{i:04d}.png" for i in range(1, FRAME_COUNT + 1)]
    assert np.array_equal(read_rgb(destination / "frame_0002.png"), frames[1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames"]  # no temporary folder left


def test_ping_pong_appends_the_reverse_without_repeating_the_ends(tmp_path):
    frames = make_frames()
    destination = tmp_path / "pingpong"
    events, _ = run(export_animation(frames, destination, options=AnimationOptions(ping_pong=True)))
    files = sorted(destination.iterdir())
    assert len(files) == 2 * FRAME_COUNT - 2
    # Order: 1..6 then 5..2, so output 7 is input 5 and the last output is input 2.
    assert np.array_equal(read_rgb(files[6]), frames[4])
    assert np.array_equal(read_rgb(files[-1]), frames[1])
    assert events[0].total == 2 * FRAME_COUNT - 2


def test_gif_ping_pong_frame_count(tmp_path):
    destination = tmp_path / "pingpong.gif"
    run(export_animation(make_frames(), destination, options=AnimationOptions(ping_pong=True)))
    with Image.open(destination) as gif:
        assert gif.n_frames == 2 * FRAME_COUNT - 2


def test_size_upscales_square_frames_and_refuses_non_square(tmp_path):
    destination = tmp_path / "big"
    run(export_animation(make_frames(), destination, options=AnimationOptions(size=48)))
    assert read_rgb(destination / "frame_0001.png").shape == (48, 48, 3)
    with pytest.raises(BadInputError, match="frame 1 .*not square"):
        run(export_animation(make_frames(width=40), tmp_path / "wide.gif", options=AnimationOptions(size=48)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big"]


def test_existing_frame_folder_rules(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    run(export_animation(make_frames(), empty))
    assert len(list(empty.iterdir())) == FRAME_COUNT

    with pytest.raises(BadInputError, match="not empty"):
        export_animation(make_frames(), empty)
    run(export_animation(make_frames(3), empty, overwrite=True))  # a previous export is replaced
    assert len(list(empty.iterdir())) == 3

    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"not ours")
    with pytest.raises(BadInputError, match="other than frame"):
        export_animation(make_frames(), foreign, overwrite=True)
    assert [p.name for p in foreign.iterdir()] == ["holiday.jpg"]


# --------------------------------------------------------------------------------------
# Cancelling, overwriting, bad input


@pytest.mark.parametrize("name", ["c.gif", "c.mp4", "c.webp", "c.png", "c_frames"])
def test_cancel_after_two_frames_leaves_nothing(tmp_path, name):
    stop = threading.Event()
    pulled: list[int] = []
    frames = stopping_iterator(make_frames(), stop, after=2, pulled=pulled)
    events, returned = run(export_animation(frames, tmp_path / name, should_stop=stop))
    assert returned is None
    assert [event.done for event in events] == [1, 2]
    assert pulled == [0, 1, 2]  # stopped within one frame
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["e.gif", "e.webp", "e.png"])
def test_cancel_while_encoding_leaves_nothing(tmp_path, name):
    stop = threading.Event()
    generator = export_animation(make_frames(), tmp_path / name, should_stop=stop)
    for event in generator:
        if event.detail.startswith("encoding"):
            stop.set()
    assert list(tmp_path.iterdir()) == []


def test_closing_the_generator_early_removes_the_temporary_file(tmp_path):
    generator = export_animation(make_frames(), tmp_path / "closed.mp4")
    next(generator)
    assert len(list(tmp_path.iterdir())) == 1  # the hidden temporary file exists meanwhile
    generator.close()
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_overwrite_an_existing_file_unless_asked(tmp_path):
    destination = tmp_path / "taken.gif"
    destination.write_bytes(b"precious")
    with pytest.raises(BadInputError, match="already exists"):
        export_animation(make_frames(), destination)
    assert destination.read_bytes() == b"precious"
    run(export_animation(make_frames(), destination, overwrite=True))
    with Image.open(destination) as gif:
        assert gif.n_frames == FRAME_COUNT


def test_mismatched_frame_sizes_name_the_frame(tmp_path):
    frames = make_frames()
    frames[2] = make_frames(1, height=30)[0]
    with pytest.raises(BadInputError, match="frame 3 is 32×30 but frame 1 is 32×32"):
        run(export_animation(frames, tmp_path / "bad.mp4"))
    assert list(tmp_path.iterdir()) == []


def test_bad_frames_and_destinations_are_refused(tmp_path):
    with pytest.raises(BadInputError, match=r"unsupported suffix '\.avi'"):
        export_animation(make_frames(), tmp_path / "clip.avi")
    with pytest.raises(BadInputError, match="does not exist"):
        export_animation(make_frames(), tmp_path / "missing" / "clip.gif")
    with pytest.raises(BadInputError, match="frame 2 must be an H×W×3 uint8"):
        run(export_animation([make_frames(1)[0], np.zeros((32, 32, 3), np.float32)], tmp_path / "f.gif"))
    with pytest.raises(BadInputError, match="no frames"):
        run(export_animation([], tmp_path / "none.webp"))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "settings", [{"fps": 0}, {"fps": float("nan")}, {"crf": 52}, {"quality": 101}, {"size": 0}, {"fps": True}]
)
def test_animation_options_are_validated(settings):
    with pytest.raises(BadInputError):
        AnimationOptions(**settings)


def test_progress_total_is_zero_when_the_count_is_unknown(tmp_path):
    events, _ = run(export_animation(iter(make_frames(3)), tmp_path / "unknown"))
    assert [(e.done, e.total) for e in events[:3]] == [(1, 0), (2, 0), (3, 0)]
    assert (events[-1].done, events[-1].total) == (3, 3)
    stacked = np.stack(make_frames(4))  # an N×H×W×3 array counts as a sequence of frames
    events, _ = run(export_animation(stacked, tmp_path / "stacked.gif"))
    assert events[0].total == 4


# --------------------------------------------------------------------------------------
# Easing and timelines


@pytest.mark.parametrize("kind", export.EASING_KINDS)
def test_ease_endpoints_and_monotonic(kind):
    assert ease(0.0, kind) == 0.0 and ease(1.0, kind) == 1.0
    values = [ease(t, kind) for t in np.linspace(0, 1, 101)]
    assert all(b >= a for a, b in itertools.pairwise(values))


def test_ease_shapes_and_errors():
    assert ease(0.5, "ease-in-out") == 0.5
    assert ease(0.25, "ease-in") < 0.25 < ease(0.25, "ease-out")
    with pytest.raises(BadInputError, match="bounce"):
        ease(0.5, "bounce")
    with pytest.raises(BadInputError, match="from 0 to 1"):
        ease(1.5, "linear")


def test_timeline_endpoints_spacing_and_monotonicity():
    assert timeline_lambdas(3, 5) == [(0, 0.0), (0, 0.5), (1, 0.0), (1, 0.5), (1, 1.0)]
    timeline = timeline_lambdas(4, 20, easing=["ease-in", "linear", "ease-in-out"])
    assert len(timeline) == 20
    assert timeline[0] == (0, 0.0) and timeline[-1] == (2, 1.0)
    positions = [segment + weight for segment, weight in timeline]
    assert all(b > a for a, b in itertools.pairwise(positions))
    assert all(0 <= segment <= 2 and 0.0 <= weight <= 1.0 for segment, weight in timeline)


def test_timeline_applies_easing_per_segment():
    eased = timeline_lambdas(2, 5, easing="ease-in-out")
    assert [w for _, w in eased] == [ease(t, "ease-in-out") for t in (0, 0.25, 0.5, 0.75, 1)]
    assert eased[1][1] < 0.25


@pytest.mark.parametrize(
    "arguments", [(1, 5, "linear"), (2, 1, "linear"), (3, 5, ["linear"]), (2, 5, "wobble")]
)
def test_timeline_validates(arguments):
    keyframes, frames, easing = arguments
    with pytest.raises(BadInputError):
        timeline_lambdas(keyframes, frames, easing=easing)


# --------------------------------------------------------------------------------------
# Contact sheets


def test_contact_sheet_layout_and_labels(tmp_path):
    images = make_frames(5)
    destination = write_contact_sheet(
        images, tmp_path / "sheet.png", columns=3, padding=2, labels=[f"class {i}" for i in range(5)]
    )
    sheet = read_rgb(destination)
    rows = 2
    assert sheet.shape[1] == 2 + 3 * (32 + 2)
    pitch_y = (sheet.shape[0] - 2) // rows
    assert pitch_y > 32 + 2  # room for a label strip under each row
    # Cell (row 1, column 1) holds image 4, unscaled.
    top, left = 2 + pitch_y, 2 + 34
    assert np.array_equal(sheet[top: top + 32, left: left + 32], images[4])
    label_strip = sheet[2 + 32: 2 + pitch_y - 2, 2: 2 + 32]
    assert label_strip.min() < 128  # dark text on the white background
    # The empty sixth cell stays background.
    assert (sheet[top: top + 32, 2 + 2 * 34: 2 + 2 * 34 + 32] == 255).all()


def test_contact_sheet_refuses_overwrite_and_bad_labels(tmp_path):
    destination = tmp_path / "sheet.jpg"
    write_contact_sheet(make_frames(2), destination, columns=2)
    with pytest.raises(BadInputError, match="already exists"):
        write_contact_sheet(make_frames(2), destination, columns=2)
    write_contact_sheet(make_frames(2), destination, columns=2, overwrite=True)
    with pytest.raises(BadInputError, match="2 strings"):
        write_contact_sheet(make_frames(2), tmp_path / "x.png", columns=2, labels=["only one"])
    with pytest.raises(BadInputError, match="image 2"):
        write_contact_sheet([make_frames(1)[0], np.zeros((4, 4))], tmp_path / "y.png", columns=2)
