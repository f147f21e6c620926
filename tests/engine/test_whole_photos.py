"""Whole photos at their own scale: restore plans, full-frame coverage, per-area inpainting, plan progress."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pytest

from engine import events as ev
from engine.api import Engine, RestoreRequest, load_model
from engine.composite import Box, composite_colorization, srgb_to_lab
from engine.errors import BadInputError
from engine.plan import AREA, TILE, WHOLE, area_runs, sr_tile_runs
from engine.tasks import LARGE_OUTPUT_PIXELS
from tests.conftest import make_tiny_biggan
from tests.engine.test_api import photo


@pytest.fixture(scope="module")
def engine() -> Engine:
    generator, discriminator = make_tiny_biggan()
    return Engine(load_model((generator, discriminator)), device="cpu", precision="fp32")


def quick(task: str, image: np.ndarray, **kwargs) -> RestoreRequest:
    return RestoreRequest(image=image, task=task, quick=True, iteration_scale=0.1, class_index=1, **kwargs)


def two_holes(height: int = 60, width: int = 90) -> np.ndarray:
    mask = np.zeros((height, width), np.float32)
    mask[8:14, 6:12] = 1.0
    mask[40:50, 70:84] = 1.0
    return mask


# ------------------------------------------------------------------ plans


def test_colorize_of_a_landscape_photo_is_one_run_on_the_whole_frame(engine):
    plan = engine.prepare(quick("colorize", photo(90, 60))).plan
    assert [run.role for run in plan.runs] == [WHOLE]
    assert plan.runs[0].region.box == (0, 0, 90, 60)
    assert plan.output_size == (90, 60)


def test_inpainting_plans_one_run_per_painted_area_around_it(engine):
    mask = two_holes()
    plan = engine.prepare(quick("inpaint", photo(90, 60), mask=mask)).plan
    assert [run.role for run in plan.runs] == [AREA, AREA]
    resolution = engine.resolution
    for run, (left, top, right, bottom) in zip(plan.runs, [(6, 8, 12, 14), (70, 40, 84, 50)]):
        region = run.region
        # Small holes are seen at the model's own resolution, inside the photo, hole included.
        assert region.size == resolution
        assert region.left <= left and region.top <= top and region.right >= right and region.bottom >= bottom
        assert region.right <= 90 and region.bottom <= 60
    assert plan.total_steps == 2 * plan.steps_per_run


def test_super_resolution_tiles_cover_the_low_resolution_photo_at_its_own_scale():
    runs = sr_tile_runs(40, 23, resolution=32, factor=2)
    covered = np.zeros((23, 40), bool)
    for run in runs:
        assert run.role == TILE and run.region.size == 16
        covered[run.region.top : run.region.bottom, run.region.left : run.region.right] = True
        assert run.output.box == tuple(2 * value for value in run.region.box)
    assert covered.all()


def test_area_squares_stay_inside_small_photos():
    runs = area_runs([(0, 0, 5, 5), (20, 10, 30, 18)], 30, 18, resolution=64)
    for run in runs:
        assert run.region.size == 18 and run.region.top == 0
        assert 0 <= run.region.left and run.region.right <= 30


# ------------------------------------------------------------------ whole-frame results


def test_whole_frame_colorization_takes_the_colour_up_to_every_border():
    gray = np.full((30, 80, 3), 128, np.uint8)
    result = np.zeros((16, 16, 3), np.uint8)
    result[...] = (200, 60, 40)          # one strong colour
    composite = composite_colorization(gray, Box.whole(80, 30), result)
    chroma = np.hypot(*np.moveaxis(srgb_to_lab(composite)[..., 1:], -1, 0))
    assert chroma.min() > 20             # no grey strip, no grey rim at the photo's border
    assert np.max(np.abs(srgb_to_lab(composite)[..., 0] - srgb_to_lab(gray)[..., 0])) < 1.0


def test_colorize_changes_the_colour_of_every_column_of_a_landscape_photo(engine):
    gray = np.repeat(photo(90, 60).mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
    final = list(engine.restore(quick("colorize", gray)))[-1]
    assert isinstance(final, ev.Finished)
    composite = final.result.composite
    coloured_columns = (np.abs(composite.astype(int) - gray.astype(int)).sum(axis=2) > 0).any(axis=0)
    assert coloured_columns.all()


def test_inpainting_fills_every_area_and_keeps_the_rest(engine):
    original = photo(90, 60)
    mask = two_holes()
    final = list(engine.restore(quick("inpaint", original, mask=mask)))[-1]
    composite = final.result.composite
    assert final.result.runs_done == final.result.runs_total == 2
    for rows, columns in ((slice(8, 14), slice(6, 12)), (slice(40, 50), slice(70, 84))):
        assert not np.array_equal(composite[rows, columns], original[rows, columns])
    # Gradient-domain blending: every pixel that was not painted is the photo's, bit for bit.
    unpainted = mask < 0.5
    assert np.array_equal(composite[unpainted], original[unpainted])


# ------------------------------------------------------------------ progress, cancel, previews


def test_a_multi_run_plan_counts_steps_over_the_whole_plan(engine):
    request = replace(quick("inpaint", photo(90, 60), mask=two_holes()), iteration_scale=0.5)
    events = list(engine.restore(request))
    started = next(e for e in events if isinstance(e, ev.Started))
    steps = [e for e in events if isinstance(e, ev.Step)]
    assert started.plan.runs == 2
    assert [e.step for e in steps] == list(range(1, started.plan.total_steps + 1))
    assert all(e.total_steps == started.plan.total_steps for e in steps)
    assert [e.index for e in events if isinstance(e, ev.RunBegan)] == [0, 1]
    assert steps[-1].eta_seconds == pytest.approx(0.0, abs=1e-6)
    # Run 2 is priced from what run 1 measured: an estimate from its first step on.
    second_run = [e for e in steps[:-1] if e.step > started.plan.total_steps // 2]
    assert second_run and all(e.eta_seconds is not None and e.eta_seconds > 0 for e in second_run)


def test_cancel_between_runs_keeps_the_finished_area_and_says_so(engine):
    original = photo(90, 60)
    stop = threading.Event()
    events = []
    for event in engine.restore(quick("inpaint", original, mask=two_holes()), should_stop=stop):
        events.append(event)
        if isinstance(event, ev.RunBegan) and event.index == 1:
            stop.set()
    final = events[-1]
    assert isinstance(final, ev.Cancelled)
    assert final.result.runs_done == 1 and final.result.runs_total == 2
    assert "1 of 2 painted areas" in final.reason
    composite = final.result.composite
    assert not np.array_equal(composite[8:14, 6:12], original[8:14, 6:12])
    assert np.array_equal(composite[40:50, 70:84], original[40:50, 70:84])


def test_live_frames_show_the_whole_photo_at_a_display_scale(engine):
    events = list(engine.restore(quick("colorize", photo(90, 60)), frame_interval=0.0))
    previews = [e.preview for e in events if isinstance(e, ev.Frame)]
    assert previews and all(p is not None and p.shape == (60, 90, 3) for p in previews)


# ------------------------------------------------------------------ bad input, cache


@pytest.mark.parametrize(
    "mask, message",
    [(np.zeros((60, 90), np.float32), "no painted pixels"), (np.ones((60, 90), np.float32), "whole photo")],
)
def test_an_empty_or_full_mask_gets_one_sentence_naming_the_photo(engine, mask, message):
    with pytest.raises(BadInputError, match=message) as raised:
        engine.prepare(RestoreRequest(image=photo(90, 60), task="inpaint", mask=mask, source_name="cat.png"))
    assert "cat.png" in str(raised.value)


def test_results_above_the_size_limit_must_be_asked_for(engine):
    side = int((LARGE_OUTPUT_PIXELS / 64) ** 0.5) + 8       # ×8 of this is above the limit
    image = np.zeros((side, side, 3), np.uint8)
    with pytest.raises(BadInputError, match="allow-large"):
        engine.prepare(RestoreRequest(image=image, task="sr", sr_factor=8, source_name="big.png"))


def test_the_cache_key_is_the_engines_and_names_every_setting(engine):
    request = quick("inpaint", photo(90, 60), mask=two_holes())
    key, made_with = engine.cache_key(request)
    assert key == engine.cache_key(engine.prepare(request))[0]
    assert key != engine.cache_key(quick("inpaint", photo(90, 60), mask=two_holes(), seed=1))[0]
    assert made_with["settings"]["plan"][0][0] == AREA


def test_super_resolution_at_detail_strength_zero_is_classical_whatever_the_prior_made(engine):
    low = photo(20, 16, seed=3)
    results = [
        list(engine.restore(quick("sr", low, sr_factor=2, detail_strength=0.0, seed=seed)))[-1].result.composite
        for seed in (0, 1)
    ]
    assert np.array_equal(results[0], results[1])
    detailed = list(engine.restore(quick("sr", low, sr_factor=2, detail_strength=1.0)))[-1].result.composite
    assert not np.array_equal(detailed, results[0])
    from PIL import Image

    for image in (results[0], detailed):
        shrunk = np.asarray(Image.fromarray(image).resize((20, 16), Image.Resampling.LANCZOS)).astype(int)
        assert np.abs(shrunk - low.astype(int)).max() <= 2


def test_a_detail_strength_outside_zero_to_one_is_one_sentence(engine):
    with pytest.raises(BadInputError, match="detail strength"):
        engine.prepare(quick("sr", photo(20, 16), sr_factor=2, detail_strength=1.5))


def test_a_cancelled_super_resolution_keeps_its_finished_tiles_and_the_rest_classical(engine):
    low = photo(28, 16, seed=5)               # two 16 px tiles at ×2 on the 32 px model
    stop = threading.Event()
    events = []
    for event in engine.restore(quick("sr", low, sr_factor=2, detail_strength=1.0), should_stop=stop):
        events.append(event)
        if isinstance(event, ev.RunBegan) and event.index == 1:
            stop.set()
    final = events[-1]
    assert isinstance(final, ev.Cancelled) and final.result.runs_done == 1
    assert "1 of 2 tiles" in final.reason and "classical" in final.reason
    composite = final.result.composite
    assert composite.shape == (32, 56, 3)
    classical = list(engine.restore(quick("sr", low, sr_factor=2, detail_strength=0.0)))[-1].result.composite
    # Far from the finished tile the result is the classical upscaling; near it, the prior's.
    assert np.abs(composite[:, -8:].astype(int) - classical[:, -8:].astype(int)).max() <= 1
    assert not np.array_equal(composite[:, :16], classical[:, :16])


def test_the_structure_every_tile_shares_is_removed_and_the_photos_own_detail_kept():
    from engine.superres import FIXED_PATTERN_MIN_TILES, prior_detail, without_fixed_pattern

    rng = np.random.default_rng(7)
    shared = np.zeros((32, 32, 3), np.float32)
    shared[:, 20, :] = 40.0  # a line the generator draws at the same column of every tile
    tiles = [rng.uniform(60, 180, (32, 32, 3)).astype(np.float32) + shared for _ in range(24)]
    cleaned = without_fixed_pattern(tiles, 4)
    line = np.abs(prior_detail(shared, 4)[:, 20]).mean()
    shared_before = np.abs(np.mean([prior_detail(t, 4) for t in tiles], axis=0)[:, 20]).mean()
    shared_after = np.abs(np.mean([prior_detail(t, 4) for t in cleaned], axis=0)[:, 20]).mean()
    assert line > 10 and shared_before > 0.7 * line and shared_after < 0.3 * line
    # Each tile keeps its own detail: the cleaned tile still correlates with what was drawn in it.
    own = prior_detail(tiles[3] - shared, 4).ravel()
    assert np.corrcoef(own, prior_detail(cleaned[3], 4).ravel())[0, 1] > 0.8
    # Too few tiles to tell shared from own: unchanged.
    few = tiles[: FIXED_PATTERN_MIN_TILES - 1]
    for original, kept in zip(few, without_fixed_pattern(few, 4)):
        np.testing.assert_array_equal(original, kept)


def test_the_sr_live_preview_adds_the_cleaned_detail_to_the_classical_upscale(engine):
    from engine.assemble import LivePreview
    from engine.superres import FIXED_PATTERN_MIN_TILES

    low = photo(60, 40)
    prepared = engine.prepare(RestoreRequest(image=low, task="sr", sr_factor=4, quick=True, class_index=1))
    runs = prepared.runs
    assert len(runs) >= FIXED_PATTERN_MIN_TILES
    side = runs[0].run.output.width
    shared = np.zeros((side, side, 3), np.float32)
    shared[:, side // 2, :] = 60.0   # the generator's fixed line, in every tile
    rng = np.random.default_rng(3)
    preview = LivePreview(prepared, detail_strength=1.0)
    base = preview.base.astype(np.float32)
    frames = []
    for index, run in enumerate(runs):
        image = np.clip(rng.uniform(170, 190, (side, side, 3)) + shared, 0, 255).astype(np.uint8)
        frames.append(preview.update(index, image, final=True).astype(np.float32))
    # Not the raw model output: the preview keeps the photo's own low frequencies
    # (the tiles' random means would move it by tens of levels).
    assert abs(float(frames[-1].mean() - base.mean())) < 3.0
    # Once enough tiles finished, the shared line is estimated and removed from later tiles.
    last = runs[-1].run.output
    column = last.left + side // 2
    if column < preview.size[0]:
        rows = slice(last.top, min(last.bottom, preview.size[1]))
        line = np.abs(frames[-1][rows, column] - base[rows, column]).mean()
        beside = np.abs(frames[-1][rows, column - 3] - base[rows, column - 3]).mean()
        assert line < beside + 10.0
