"""Put the runs of a restore plan together at the photo's own resolution (numpy and Pillow only).

:func:`assemble_composite` builds the saved result from every finished run of a
:class:`engine.plan.RestorePlan`; :class:`LivePreview` builds the same picture at a
display scale while the runs progress, so the canvas shows what will be saved rather
than the raw model output. Runs that have not finished contribute nothing: their
pixels keep the photo's own (or, for super-resolution, the classical upscaling).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from engine.blend import HOLE_THRESHOLD, harmonic_fill, poisson_blend
from engine.composite import (
    Box,
    RegionOfInterest,
    composite_for_task,
)
from engine.degrade import match_low_resolution
from engine.plan import AREA, TILE, RestorePlan

if TYPE_CHECKING:
    from engine.api import PreparedRestore
    from engine.state import RestoreResult

__all__ = ["LivePreview", "assemble_composite", "partial_plan_note", "restrict_mask_to_area"]

#: The live preview's longer side in pixels (the canvas scales it to the photo).
PREVIEW_MAX_SIDE = 640
#: Seconds between live previews (each costs a display-scale composite on the engine thread).
PREVIEW_INTERVAL_S = 0.25


def restrict_mask_to_area(mask: np.ndarray, area: tuple[int, int, int, int], margin: int) -> np.ndarray:
    """The mask with every painted pixel outside ``area`` (left, top, right, bottom) ± ``margin`` cleared.

    Each inpainting run fills only its own area, so that where two runs' squares overlap
    neither overwrites the other's hole.
    """
    left, top, right, bottom = area
    height, width = mask.shape[:2]
    restricted = np.zeros_like(mask)
    rows = slice(max(0, top - margin), min(height, bottom + margin))
    columns = slice(max(0, left - margin), min(width, right + margin))
    restricted[rows, columns] = mask[rows, columns]
    return restricted


def _model_image(prepared: PreparedRestore, run_index: int, image: np.ndarray) -> np.ndarray:
    run = prepared.runs[run_index]
    if run.low_resolution is not None and run.run.role != TILE and run.degradation.sr_factor:
        return match_low_resolution(image, run.low_resolution, run.degradation.sr_factor)
    return image


def assemble_composite(
    prepared: PreparedRestore, results: Sequence[RestoreResult | None], *, detail_strength: float | None,
    remove_fixed_pattern: bool = True,
) -> np.ndarray:
    """The full-resolution result of a plan from its finished runs (None = not finished).

    * ``sr``: the classical upscaling of the whole low-resolution photo plus
      ``detail_strength`` × the prior's detail of every finished tile, projected so that
      the output shrunk back (Lanczos) reproduces the input (:mod:`engine.superres`); the
      structure all tiles share at the same place is removed first
      (:func:`engine.superres.without_fixed_pattern`; ``remove_fixed_pattern=False`` keeps
      it, for comparisons);
    * inpainting areas: each finished area's fill put into the photo in turn, only over
      its own painted pixels;
    * one whole-frame or region run: :func:`engine.composite.composite_for_task`.
    """
    request = prepared.request
    plan: RestorePlan = prepared.plan
    if request.task == "sr":
        from engine.superres import assemble, classical_upscale, without_fixed_pattern

        factor = prepared.runs[0].degradation.sr_factor
        low = prepared.low_resolution
        classical = classical_upscale(low, factor)
        finished = [result.image for result in results if result is not None]
        finished = (without_fixed_pattern(finished, factor) if remove_fixed_pattern
                    else [np.asarray(image, dtype=np.float32) for image in finished])
        outputs = iter(finished)
        tiles = []
        for run, result in zip(prepared.runs, results):
            # The model's raw tile outputs (less the structure every tile shares): assemble
            # keeps only the blend's part that the downsampling cannot see, in the whole
            # photo's null space (no per-tile border effects). A tile that never ran (a
            # cancelled plan) stands in with the classical upscaling itself, so the strength
            # changes nothing there.
            output = next(outputs) if result is not None else _output_crop(classical, run.run.output)
            tiles.append(((run.run.output.left, run.run.output.top), output))
        return assemble(low, factor, tiles, detail_strength, classical=classical)
    if plan.runs[0].role == AREA:
        output = np.array(request.image, copy=True)
        strength = 1.0 if detail_strength is None else detail_strength
        for run, result, area in zip(prepared.runs, results, prepared.areas):
            if result is not None:
                output = _blend_area(output, request.mask, area, run.run.region, result.image, strength=strength)
        return output
    result = results[0]
    if result is None:
        return np.array(request.image, copy=True)
    run = prepared.runs[0]
    return composite_for_task(
        request.task, request.image, run.run.region, _model_image(prepared, 0, result.image),
        mask=request.mask if request.task in ("inpaint", "hybrid") else None,
        factor=run.degradation.sr_factor,
    )


def _blend_area(
    photo: np.ndarray, mask: np.ndarray, area: tuple[int, int, int, int],
    region: Box | RegionOfInterest, model_image: np.ndarray, *, strength: float = 1.0,
) -> np.ndarray:
    """One area's fill put into ``photo`` in the gradient domain; every other pixel stays as it is.

    The model's R×R result is resized (Lanczos) to the square it saw; only the area's own
    painted pixels are replaced (:func:`engine.blend.poisson_blend`), so that where two
    runs' squares overlap neither overwrites the other's hole. The gradient-domain fill is
    the smoothest fill of the hole (:func:`engine.blend.harmonic_fill`, which agrees with
    its whole border) plus the prior's structure inside it; ``strength`` scales that
    structure (0: the smoothest fill, 1: the prior's whole fill).
    """
    fill = np.asarray(
        Image.fromarray(model_image).resize((region.width, region.height), Image.Resampling.LANCZOS),
        dtype=np.uint8,
    )
    area_mask = restrict_mask_to_area(mask, area, margin=0)
    blended = poisson_blend(photo, area_mask, fill, box=region.box)
    if strength >= 1.0:
        return blended
    smooth = harmonic_fill(photo, area_mask)
    hole = area_mask >= HOLE_THRESHOLD
    mixed = smooth[hole].astype(np.float32) + strength * (blended[hole].astype(np.float32) - smooth[hole])
    output = np.array(photo, copy=True)
    output[hole] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    return output


def _output_crop(image: np.ndarray, box: Box) -> np.ndarray:
    """``box`` of a float H×W×3 image, reflected where the box reaches past the image's border."""
    height, width = image.shape[:2]
    rows = np.arange(box.top, box.bottom)
    columns = np.arange(box.left, box.right)

    def reflect(index: np.ndarray, size: int) -> np.ndarray:
        period = 2 * size
        index = np.mod(index, period)
        return np.where(index < size, index, period - 1 - index)

    return np.ascontiguousarray(image[reflect(rows, height)][:, reflect(columns, width)])


def partial_plan_note(plan: RestorePlan, results: Sequence[RestoreResult | None]) -> str:
    """One sentence for a plan stopped part-way: what the saved result holds."""
    done = sum(1 for result in results if result is not None)
    noun = {TILE: "tiles", AREA: "painted areas"}.get(plan.runs[0].role, "runs")
    rest = {
        TILE: "the other tiles are classical upscaling",
        AREA: "the other painted areas keep the photo's pixels",
    }.get(plan.runs[0].role, "the rest keeps the photo's pixels")
    return f"Stopped after {done} of {len(plan.runs)} {noun}; {rest}."


def _scaled_box(region: Box | RegionOfInterest, scale: float, limit: tuple[int, int]) -> Box:
    left = min(int(round(region.left * scale)), limit[0] - 1)
    top = min(int(round(region.top * scale)), limit[1] - 1)
    right = max(left + 1, min(limit[0], int(round(region.right * scale))))
    bottom = max(top + 1, min(limit[1], int(round(region.bottom * scale))))
    return Box(left, top, right - left, bottom - top)


class LivePreview:
    """The restore so far at a display scale: what will be saved, updated as frames arrive.

    Built once per restore; :meth:`update` takes a run's newest model-resolution image and
    returns the preview (``final=True`` keeps that run's contribution for later frames).
    """

    interval = PREVIEW_INTERVAL_S

    def __init__(self, prepared: PreparedRestore, *, max_side: int = PREVIEW_MAX_SIDE,
                 detail_strength: float | None = None) -> None:
        self.prepared = prepared
        request, plan = prepared.request, prepared.plan
        out_width, out_height = plan.output_size
        self.scale = min(1.0, max_side / max(out_width, out_height))
        self.size = (max(1, int(round(out_width * self.scale))), max(1, int(round(out_height * self.scale))))
        if request.task == "sr":
            source = Image.fromarray(prepared.low_resolution)
            self.region_scale = self.scale * prepared.runs[0].degradation.sr_factor
        else:
            source = Image.fromarray(np.ascontiguousarray(request.image))
            self.region_scale = self.scale
        self.base = np.asarray(source.resize(self.size, Image.Resampling.BICUBIC), dtype=np.uint8)
        self.mask = None
        if request.mask is not None and request.task in ("inpaint", "hybrid"):
            plane = Image.fromarray(np.ascontiguousarray(request.mask, dtype=np.float32), mode="F")
            self.mask = np.asarray(plane.resize(self.size, Image.Resampling.BOX), dtype=np.float32)
        self.kept = self.base.copy()
        self.strength = 1.0 if detail_strength is None else detail_strength
        # Super-resolution: the prior's detail of finished tiles, from which the structure
        # every tile shares is estimated as in the saved result (engine.superres.fixed_pattern).
        self._tile_details: list[np.ndarray] = []
        self._pattern: np.ndarray | None = None

    def _region(self, run_index: int) -> Box:
        run = self.prepared.runs[run_index].run
        if run.role == TILE:
            return _scaled_box(run.output, self.scale, self.size)
        return _scaled_box(run.region, self.region_scale, self.size)

    def update(self, run_index: int, image: np.ndarray, *, final: bool = False) -> np.ndarray:
        """The preview with run ``run_index`` showing ``image`` (R×R×3 uint8 model output)."""
        task = self.prepared.request.task
        region = self._region(run_index)
        role = self.prepared.runs[run_index].run.role
        if role == TILE:
            preview = self._with_tile(run_index, region, image, final=final)
        elif task == "hybrid" and self.prepared.runs[0].degradation.sr_factor:
            patch = np.asarray(Image.fromarray(image).resize((region.width, region.height),
                                                             Image.Resampling.BILINEAR), dtype=np.uint8)
            preview = self.kept.copy()
            preview[region.top : region.bottom, region.left : region.right] = patch
        elif role == AREA:
            area = self.prepared.areas[run_index]
            scaled = tuple(int(round(value * self.region_scale)) for value in area)
            scaled = (scaled[0] - 1, scaled[1] - 1, scaled[2] + 1, scaled[3] + 1)  # rounding may shift it
            preview = _blend_area(self.kept, self.mask, scaled, region, image, strength=self.strength)
        else:
            mask = self.mask if task in ("inpaint", "hybrid") else None
            preview = composite_for_task(task, self.base, region, image, mask=mask)
        if final:
            self.kept = preview
        return np.array(preview, copy=True)

    def _with_tile(self, run_index: int, region: Box, image: np.ndarray, *, final: bool) -> np.ndarray:
        """The preview with one super-resolution tile: the classical base plus its detail.

        As in the saved result, a tile adds ``strength`` × the prior's detail (less the
        structure every finished tile shares) to the classical upscaling; it does not
        replace the photo with the raw model output.
        """
        from engine.superres import FIXED_PATTERN_MAX_SAMPLES, FIXED_PATTERN_MIN_TILES, prior_detail

        detail = prior_detail(image, self.prepared.runs[run_index].degradation.sr_factor)
        if final and len(self._tile_details) < FIXED_PATTERN_MAX_SAMPLES:
            self._tile_details.append(detail)
            if len(self._tile_details) >= FIXED_PATTERN_MIN_TILES:
                self._pattern = np.median(np.stack(self._tile_details), axis=0)
        if self._pattern is not None:
            detail = detail - self._pattern
        output = self.prepared.runs[run_index].run.output
        scaled_side = max(1, int(round(output.width * self.scale)))
        # The tile at display scale, cut where it reaches past the frame.
        channels = [
            np.asarray(Image.fromarray(np.ascontiguousarray(detail[..., channel]), mode="F").resize(
                (scaled_side, scaled_side), Image.Resampling.BILINEAR), dtype=np.float32)
            for channel in range(3)
        ]
        scaled = np.stack(channels, axis=-1)[: region.height, : region.width]
        preview = self.kept.copy()
        rows, columns = slice(region.top, region.top + scaled.shape[0]), slice(region.left, region.left + scaled.shape[1])
        preview[rows, columns] = np.clip(
            self.base[rows, columns].astype(np.float32) + self.strength * scaled, 0, 255,
        ).round().astype(np.uint8)
        return preview
