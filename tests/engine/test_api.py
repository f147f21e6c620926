"""The engine façade: full-resolution restores, states and manipulations on a tiny model."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from engine import events as ev
from engine.api import Engine, RestoreRequest, load_model, resolve_class
from engine.composite import RegionOfInterest, srgb_to_lab
from engine.errors import BadInputError
from engine.state import GeneratorState
from tests.conftest import make_tiny_biggan


def photo(width: int = 90, height: int = 70, *, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width]
    image = np.stack([xs * 255 / width, ys * 255 / height, (xs + ys) % 255], axis=-1)
    return np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def engine() -> Engine:
    generator, discriminator = make_tiny_biggan()
    return Engine(load_model((generator, discriminator)), device="cpu", precision="fp32")


def finish(engine: Engine, request: RestoreRequest, **kwargs):
    events = list(engine.restore(request, **kwargs))
    return events, events[-1]


def quick(task: str, image: np.ndarray, **kwargs) -> RestoreRequest:
    return RestoreRequest(image=image, task=task, quick=True, iteration_scale=0.1, class_index=1, **kwargs)


def test_colorize_keeps_the_full_resolution_luminance_over_the_whole_frame(engine):
    original = photo()
    events, final = finish(engine, quick("colorize", original))
    assert isinstance(final, ev.Finished)
    composite = final.result.composite
    assert composite.shape == original.shape
    assert np.max(np.abs(srgb_to_lab(original)[..., 0] - srgb_to_lab(composite)[..., 0])) < 1.0
    assert any(isinstance(e, ev.Frame) for e in events)


def test_colorize_with_a_region_changes_only_the_region(engine):
    original = photo()
    roi = RegionOfInterest.largest_centred_square(90, 70)
    _, final = finish(engine, quick("colorize", original, roi=roi))
    composite = final.result.composite
    outside = np.ones(original.shape[:2], bool)
    outside[roi.top : roi.bottom, roi.left : roi.right] = False
    assert np.array_equal(composite[outside], original[outside])


def test_inpaint_changes_only_painted_pixels(engine):
    original = photo()
    mask = np.zeros(original.shape[:2], np.float32)
    mask[25:45, 30:55] = 1.0
    _, final = finish(engine, quick("inpaint", original, mask=mask))
    composite = final.result.composite
    grown = np.zeros_like(mask, bool)
    grown[20:50, 25:60] = True   # the painted box plus more than the feather
    assert np.array_equal(composite[~grown], original[~grown])
    assert not np.array_equal(composite[25:45, 30:55], original[25:45, 30:55])


def test_super_resolution_returns_the_whole_photo_at_the_factor(engine):
    original = photo(20, 16)
    _, final = finish(engine, quick("sr", original, sr_factor=2))
    assert final.result.composite.shape == (32, 40, 3)


def test_super_resolution_of_a_region_returns_the_region_at_the_factor(engine):
    original = photo(40, 30)
    _, final = finish(engine, quick("sr", original, sr_factor=2, roi=RegionOfInterest(5, 4, 20)))
    assert final.result.composite.shape == (40, 40, 3)


def test_super_resolution_result_shrinks_back_to_the_input_itself(engine):
    # The model sees 16×16 tiles of the photo at its own scale (32 px model, ×2); the whole
    # result, shrunk with Lanczos, reproduces the photo, though the untrained generator's
    # own output does not.
    original = photo(28, 24, seed=4)
    _, final = finish(engine, quick("sr", original, sr_factor=2))
    composite = final.result.composite
    assert composite.shape == (48, 56, 3)
    shrunk = np.asarray(Image.fromarray(composite).resize((28, 24), Image.Resampling.LANCZOS)).astype(int)
    assert np.abs(shrunk - original.astype(int)).max() <= 2
    tile = np.asarray(Image.fromarray(engine.render(final.result.state)).resize((16, 16), Image.Resampling.LANCZOS))
    assert np.abs(tile.astype(int) - original[:16, :16].astype(int)).mean() > 10


def test_preview_shows_the_degraded_input(engine):
    preview = engine.preview_degraded(quick("colorize", photo()))
    assert preview.shape == (32, 32, 3)
    assert np.array_equal(preview[..., 0], preview[..., 1])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"task": "inpaint"}, "needs a mask"),
        ({"task": "inpaint", "mask": np.zeros((70, 90), np.float32)}, "no painted pixels"),
        ({"task": "inpaint", "mask": np.ones((10, 10), np.float32)}, "10×10"),
        ({"task": "colorize", "class_index": 99}, "class index 99"),
        ({"task": "colorize", "roi": RegionOfInterest(60, 0, 50)}, "outside|inside|beyond|extends"),
        ({"task": "paint"}, "paint"),
    ],
)
def test_bad_requests_get_one_clear_sentence(engine, kwargs, message):
    kwargs = {"image": photo(), "quick": True, **kwargs}
    with pytest.raises(BadInputError, match=message):
        list(engine.restore(RestoreRequest(**kwargs)))


def test_cancel_keeps_the_state_reached(engine):
    stop = threading.Event()
    cancelled = None
    for event in engine.restore(quick("reconstruct", photo()), should_stop=stop):
        if isinstance(event, ev.Step) and event.step == 2:
            stop.set()
        if isinstance(event, ev.Cancelled):
            cancelled = event
    assert cancelled is not None and cancelled.result.steps_done == 2
    assert cancelled.result.composite.shape == (70, 90, 3)


@pytest.fixture(scope="module")
def two_results(engine):
    results = []
    for seed in (0, 1):
        _, final = finish(engine, quick("reconstruct", photo(seed=seed), seed=seed))
        results.append(final.result)
    return results


def test_state_round_trip_renders_the_result(engine, two_results, tmp_path):
    result = two_results[0]
    path = result.state.save(tmp_path / "a.dgpstate")
    loaded = GeneratorState.load(path)
    assert loaded.class_index == result.class_index
    rendered = engine.render(loaded)
    assert np.max(np.abs(rendered.astype(int) - result.image.astype(int))) <= 1


def test_transfer_to_the_same_class_reproduces_the_result(engine, two_results):
    result = two_results[0]
    same = engine.transfer(result.state, result.class_index)
    assert np.max(np.abs(same.astype(int) - result.image.astype(int))) <= 1
    other = engine.transfer(result.state, (result.class_index + 1) % 10)
    assert not np.array_equal(other, same)


def test_jitter_is_seeded_and_zero_strength_is_the_result(engine, two_results):
    state = two_results[0].state
    first = engine.jitter(state, sigma=0.5, count=3, seed=7)
    again = engine.jitter(state, sigma=0.5, count=3, seed=7)
    assert len(first) == 3 and all(np.array_equal(a, b) for a, b in zip(first, again))
    still = engine.jitter(state, sigma=0.0, count=2, seed=7)
    assert all(np.max(np.abs(s.astype(int) - two_results[0].image.astype(int))) <= 1 for s in still)


def test_morph_endpoints_equal_the_two_results(engine, two_results):
    a, b = two_results
    frames = dict(engine.morph(a.state, b.state, [0.0, 0.5, 1.0]))
    assert np.max(np.abs(frames[0.0].astype(int) - a.image.astype(int))) <= 1
    assert np.max(np.abs(frames[1.0].astype(int) - b.image.astype(int))) <= 1
    assert not np.array_equal(frames[0.5], frames[0.0])


def test_a_state_from_another_model_is_refused(engine, two_results):
    other_generator, other_discriminator = make_tiny_biggan(seed=5)
    other = Engine(load_model((other_generator, other_discriminator)), device="cpu", precision="fp32")
    with pytest.raises(BadInputError, match="load that model"):
        other.render(two_results[0].state)


def test_classes_resolve_by_index_and_name():
    names = ["tench", "goldfish", "great white shark", "tiger shark"]
    assert resolve_class("goldfish", names, 4) == 1
    assert resolve_class("1", names, 4) == 1
    assert resolve_class("GREAT WHITE", names, 4) == 2
    with pytest.raises(BadInputError, match="ambiguous"):
        resolve_class("shark", names, 4)
    with pytest.raises(BadInputError, match="unknown class name 'zebra'"):
        resolve_class("zebra", names, 4)
    with pytest.raises(BadInputError, match="outside"):
        resolve_class(7, names, 4)


def test_class_numbers_are_imagenet_indices_when_the_model_knows_them():
    names = ["goldfish", "European fire salamander", "bullfrog"]
    numbers = [1, 25, 30]
    assert resolve_class("25", names, 3, numbers=numbers) == 1
    assert resolve_class(1, names, 3, numbers=numbers) == 0
    with pytest.raises(BadInputError, match="class 2 is not one of this model's 3 classes"):
        resolve_class("2", names, 3, numbers=numbers)
