"""The inpainting mask: painting, undo per stroke, import/export, and its overlay.

The mask is an ``(H, W)`` ``uint8`` array at the photo's full resolution with
1 = missing (painted) and 0 = known, the engine's convention. Every edit is a
:class:`MaskEditCommand` on the layer's ``QUndoStack`` that stores only the
bounding rectangle it changed (before and after), never the whole mask.

Brush geometry is exact and documented so tests can predict it: a pixel
``(col, row)`` is painted by a stroke segment when its centre
``(col + 0.5, row + 0.5)`` lies within ``size / 2`` of the segment (points in
image pixel coordinates, the canvas scene's coordinates).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QUndoCommand, QUndoStack
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from engine.errors import BadInputError

MIN_BRUSH_SIZE = 1.0
MAX_BRUSH_SIZE = 1000.0
BRUSH_SIZE_STEP = 1.25  # multiplicative, so [ and ] feel the same at 3 px and at 300 px
DEFAULT_OVERLAY_COLOR = QColor(255, 40, 90)


@dataclass(frozen=True)
class PixelRect:
    """A rectangle of whole pixels: columns ``left … left + width - 1``, rows ``top … top + height - 1``."""

    left: int
    top: int
    width: int
    height: int

    @property
    def right(self) -> int:
        """One past the last column."""
        return self.left + self.width

    @property
    def bottom(self) -> int:
        """One past the last row."""
        return self.top + self.height

    @property
    def slices(self) -> tuple[slice, slice]:
        """``(rows, columns)`` slices for indexing an ``(H, W)`` array."""
        return slice(self.top, self.bottom), slice(self.left, self.right)

    def united(self, other: PixelRect | None) -> PixelRect:
        if other is None:
            return self
        left, top = min(self.left, other.left), min(self.top, other.top)
        right, bottom = max(self.right, other.right), max(self.bottom, other.bottom)
        return PixelRect(left, top, right - left, bottom - top)

    def to_qrectf(self) -> QRectF:
        return QRectF(self.left, self.top, self.width, self.height)


def clamp_brush_size(size: float) -> float:
    """Brush diameter clamped to [``MIN_BRUSH_SIZE``, ``MAX_BRUSH_SIZE``] image pixels."""
    return float(min(max(size, MIN_BRUSH_SIZE), MAX_BRUSH_SIZE))


def paint_segment(
    mask_hw: np.ndarray,
    start: QPointF | tuple[float, float],
    end: QPointF | tuple[float, float],
    *,
    diameter: float,
    value: int,
) -> PixelRect | None:
    """Paint a round-capped line into ``mask_hw`` in place.

    Parameters
    ----------
    mask_hw : numpy.ndarray
        ``(H, W)`` ``uint8`` mask, modified in place.
    start, end : QPointF or (x, y)
        Segment end points in image pixel coordinates (pixel ``(c, r)`` spans
        ``[c, c + 1) × [r, r + 1)``). Equal points paint a disc.
    diameter : float
        Brush diameter in image pixels (> 0).
    value : int
        1 to paint (missing), 0 to erase.

    Returns
    -------
    PixelRect or None
        The tight bounding rectangle of the pixels the segment covers inside
        the image (whether or not their value changed), or None if it covers none.
    """
    x0, y0 = _xy(start)
    x1, y1 = _xy(end)
    radius = diameter / 2.0
    height, width = mask_hw.shape
    # Pixel centres are at c + 0.5; a centre within `radius` of the segment has
    # c in [min_x - radius - 0.5, max_x + radius - 0.5].
    col_lo = max(math.ceil(min(x0, x1) - radius - 0.5), 0)
    col_hi = min(math.floor(max(x0, x1) + radius - 0.5), width - 1)
    row_lo = max(math.ceil(min(y0, y1) - radius - 0.5), 0)
    row_hi = min(math.floor(max(y0, y1) + radius - 0.5), height - 1)
    if col_lo > col_hi or row_lo > row_hi:
        return None
    centre_x = np.arange(col_lo, col_hi + 1, dtype=np.float64)[None, :] + 0.5
    centre_y = np.arange(row_lo, row_hi + 1, dtype=np.float64)[:, None] + 0.5
    seg_x, seg_y = x1 - x0, y1 - y0
    length_sq = seg_x * seg_x + seg_y * seg_y
    if length_sq == 0.0:
        distance_sq = (centre_x - x0) ** 2 + (centre_y - y0) ** 2
    else:
        # Project every centre onto the segment, clamped to its end points.
        t = np.clip(((centre_x - x0) * seg_x + (centre_y - y0) * seg_y) / length_sq, 0.0, 1.0)
        distance_sq = (centre_x - (x0 + t * seg_x)) ** 2 + (centre_y - (y0 + t * seg_y)) ** 2
    inside = distance_sq <= radius * radius
    if not inside.any():
        return None
    region = mask_hw[row_lo : row_hi + 1, col_lo : col_hi + 1]
    region[inside] = value
    tight = _bounding_rect(inside)
    return PixelRect(col_lo + tight.left, row_lo + tight.top, tight.width, tight.height)


def _xy(point: QPointF | tuple[float, float]) -> tuple[float, float]:
    if isinstance(point, QPointF):
        return point.x(), point.y()
    return float(point[0]), float(point[1])


class MaskEditCommand(QUndoCommand):
    """One undoable mask edit, stored as the changed rectangle before and after.

    Parameters
    ----------
    layer : MaskLayer
        The mask it edits.
    rect : PixelRect
        The changed region.
    before, after : numpy.ndarray
        ``(rect.height, rect.width)`` ``uint8`` contents of the region.
    text : str
        Shown in the Edit menu ("Undo Brush stroke").
    already_applied : bool
        True when the edit is already in the mask (live strokes), so the
        first ``redo()`` that ``QUndoStack.push`` performs does nothing.
    """

    def __init__(
        self,
        layer: MaskLayer,
        rect: PixelRect,
        before: np.ndarray,
        after: np.ndarray,
        *,
        text: str,
        already_applied: bool,
    ) -> None:
        super().__init__(text)
        self.layer = layer
        self.rect = rect
        self.before = before
        self.after = after
        self._skip_next_redo = already_applied

    def redo(self) -> None:
        if self._skip_next_redo:
            self._skip_next_redo = False
            return
        self.layer.write_region(self.rect, self.after)

    def undo(self) -> None:
        self.layer.write_region(self.rect, self.before)


class MaskLayer(QObject):
    """The mask array, its undo stack and an overlay image kept in sync.

    Parameters
    ----------
    width, height : int
        The photo's size in pixels.
    color : QColor
        Overlay colour of painted pixels (drawn at the overlay item's opacity).

    Signals
    -------
    changed(int, int, int, int)
        ``left, top, width, height`` of a region whose values changed.
    """

    changed = Signal(int, int, int, int)

    def __init__(
        self, width: int, height: int, *, color: QColor = DEFAULT_OVERLAY_COLOR, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        if width <= 0 or height <= 0:
            raise ValueError(f"a mask needs a positive size, got {width} x {height}")
        self._mask = np.zeros((height, width), dtype=np.uint8)
        self._overlay = QImage(width, height, QImage.Format.Format_ARGB32_Premultiplied)
        self._overlay.fill(0)
        self._overlay_color = int(QColor(color).rgba()) & 0xFFFFFFFF
        self.undo_stack = QUndoStack(self)
        self._stroke_snapshot: np.ndarray | None = None
        self._stroke_bounds: PixelRect | None = None
        self._stroke_last_point: QPointF | None = None
        self._stroke_value = 1
        self._stroke_diameter = 1.0

    # ----------------------------------------------------------------- reading

    @property
    def width(self) -> int:
        return self._mask.shape[1]

    @property
    def height(self) -> int:
        return self._mask.shape[0]

    @property
    def array(self) -> np.ndarray:
        """A read-only view of the ``(H, W)`` ``uint8`` mask (1 = missing)."""
        view = self._mask.view()
        view.flags.writeable = False
        return view

    def as_float(self) -> np.ndarray:
        """The mask as ``(H, W)`` ``float32`` in {0, 1} (1 = missing), a copy for the engine."""
        return self._mask.astype(np.float32)

    def is_empty(self) -> bool:
        return not bool(self._mask.any())

    def overlay_image(self) -> QImage:
        """The overlay ``QImage`` (painted pixels in the overlay colour, others transparent)."""
        return self._overlay

    # ------------------------------------------------------------ raw writing

    def write_region(self, rect: PixelRect, values: np.ndarray) -> None:
        """Replace the region ``rect`` with ``values`` (``(h, w)`` ``uint8`` in {0, 1}) and refresh it."""
        self._mask[rect.slices] = values
        self._refresh_overlay(rect)

    def _refresh_overlay(self, rect: PixelRect) -> None:
        # The overlay's pixels are written through a view of the QImage's own
        # buffer, which the QImage owns and outlives this statement.
        bits = np.frombuffer(self._overlay.bits(), dtype=np.uint32)
        pixels = bits.reshape(self.height, self._overlay.bytesPerLine() // 4)[:, : self.width]
        pixels[rect.slices] = np.where(
            self._mask[rect.slices] != 0, np.uint32(self._overlay_color), np.uint32(0)
        )
        self.changed.emit(rect.left, rect.top, rect.width, rect.height)

    # ---------------------------------------------------------------- strokes

    @property
    def stroke_in_progress(self) -> bool:
        return self._stroke_snapshot is not None

    def begin_stroke(self, point: QPointF, *, diameter: float, erase: bool) -> None:
        """Start a brush (or eraser) stroke at ``point`` (image pixel coordinates) and paint its first dab."""
        if self.stroke_in_progress:
            self.end_stroke()
        # A transient copy lets end_stroke() recover the "before" of whatever
        # region the stroke grows to; only that region is kept afterwards.
        self._stroke_snapshot = self._mask.copy()
        self._stroke_bounds = None
        self._stroke_value = 0 if erase else 1
        self._stroke_diameter = clamp_brush_size(diameter)
        self._stroke_last_point = QPointF(point)
        self._paint(point, point)

    def stroke_to(self, point: QPointF) -> None:
        """Continue the current stroke with a segment to ``point``."""
        if not self.stroke_in_progress or self._stroke_last_point is None:
            return
        self._paint(self._stroke_last_point, point)
        self._stroke_last_point = QPointF(point)

    def end_stroke(self) -> MaskEditCommand | None:
        """Finish the stroke and push it on the undo stack; returns the command (None if nothing changed)."""
        snapshot, bounds = self._stroke_snapshot, self._stroke_bounds
        erase = self._stroke_value == 0
        self._stroke_snapshot = None
        self._stroke_bounds = None
        self._stroke_last_point = None
        if snapshot is None or bounds is None:
            return None
        return self._push_change(
            snapshot, bounds, text="Eraser stroke" if erase else "Brush stroke", already_applied=True
        )

    def cancel_stroke(self) -> None:
        """Abandon the current stroke, restoring the mask as it was before it."""
        if self._stroke_snapshot is not None and self._stroke_bounds is not None:
            self.write_region(self._stroke_bounds, self._stroke_snapshot[self._stroke_bounds.slices])
        self._stroke_snapshot = None
        self._stroke_bounds = None
        self._stroke_last_point = None

    def _paint(self, start: QPointF, end: QPointF) -> None:
        touched = paint_segment(
            self._mask, start, end, diameter=self._stroke_diameter, value=self._stroke_value
        )
        if touched is not None:
            self._stroke_bounds = touched.united(self._stroke_bounds)
            self._refresh_overlay(touched)

    # ------------------------------------------------------- whole operations

    def fill_rect(self, left: float, top: float, right: float, bottom: float, *, erase: bool = False) -> bool:
        """Fill (or erase) the pixels whose centres lie inside the given image-coordinate box, undoably.

        Returns True when any pixel changed.
        """
        col_lo = max(math.ceil(min(left, right) - 0.5), 0)
        col_hi = min(math.floor(max(left, right) - 0.5), self.width - 1)
        row_lo = max(math.ceil(min(top, bottom) - 0.5), 0)
        row_hi = min(math.floor(max(top, bottom) - 0.5), self.height - 1)
        if col_lo > col_hi or row_lo > row_hi:
            return False
        rect = PixelRect(col_lo, row_lo, col_hi - col_lo + 1, row_hi - row_lo + 1)
        new_mask = self._mask.copy()
        new_mask[rect.slices] = 0 if erase else 1
        return self._push_replacement(new_mask, text="Erase rectangle" if erase else "Fill rectangle")

    def clear(self) -> bool:
        """Set every pixel to known (0), undoably. Returns True when anything changed."""
        return self._push_replacement(np.zeros_like(self._mask), text="Clear mask")

    def invert(self) -> bool:
        """Swap missing and known everywhere, undoably."""
        return self._push_replacement((1 - self._mask).astype(np.uint8), text="Invert mask")

    def replace(self, new_mask: np.ndarray, *, text: str) -> bool:
        """Replace the whole mask (``(H, W)``, non-zero = missing), undoably."""
        if new_mask.shape != self._mask.shape:
            raise BadInputError(
                f"The mask is {new_mask.shape[1]} \u00d7 {new_mask.shape[0]} pixels but the photo is "
                f"{self.width} \u00d7 {self.height}."
            )
        return self._push_replacement((np.asarray(new_mask) != 0).astype(np.uint8), text=text)

    def _push_replacement(self, new_mask: np.ndarray, *, text: str) -> bool:
        before = self._mask.copy()
        changed = before != new_mask
        if not changed.any():
            return False
        rect = _bounding_rect(changed)
        self.undo_stack.push(
            MaskEditCommand(
                self,
                rect,
                before[rect.slices].copy(),
                new_mask[rect.slices].copy(),
                text=text,
                already_applied=False,
            )
        )
        return True

    def _push_change(
        self, before_full: np.ndarray, bounds: PixelRect, *, text: str, already_applied: bool
    ) -> MaskEditCommand | None:
        # Shrink the stroke's bounds to the pixels that really changed value.
        region_before = before_full[bounds.slices]
        region_after = self._mask[bounds.slices]
        changed = region_before != region_after
        if not changed.any():
            return None
        tight = _bounding_rect(changed)
        rect = PixelRect(bounds.left + tight.left, bounds.top + tight.top, tight.width, tight.height)
        command = MaskEditCommand(
            self,
            rect,
            before_full[rect.slices].copy(),
            self._mask[rect.slices].copy(),
            text=text,
            already_applied=already_applied,
        )
        self.undo_stack.push(command)
        return command

    # ---------------------------------------------------------------- files

    def export_png(self, path: str | Path) -> None:
        """Write the mask as an 8-bit grayscale PNG: white (255) = missing, black = known."""
        from PIL import Image

        target = Path(path)
        image = Image.fromarray((self._mask * 255).astype(np.uint8), mode="L")
        temporary = target.with_name(f".{target.name}.tmp")
        try:
            image.save(temporary, format="PNG")
            temporary.replace(target)
        except OSError as error:
            temporary.unlink(missing_ok=True)
            raise BadInputError(
                f"Could not write the mask to {target}: {error.strerror or error}."
            ) from error


def _bounding_rect(changed: np.ndarray) -> PixelRect:
    rows = np.flatnonzero(changed.any(axis=1))
    cols = np.flatnonzero(changed.any(axis=0))
    return PixelRect(int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1))


class MaskOverlayItem(QGraphicsItem):
    """Draws a :class:`MaskLayer`'s overlay over the photo, repainting only changed regions."""

    def __init__(self, layer: MaskLayer, *, opacity: float = 0.55) -> None:
        super().__init__()
        self._layer = layer
        self.setOpacity(opacity)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        layer.changed.connect(self._on_changed)

    @property
    def layer(self) -> MaskLayer:
        return self._layer

    def boundingRect(self) -> QRectF:
        return QRectF(0, 0, self._layer.width, self._layer.height)

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        exposed = option.exposedRect.intersected(self.boundingRect()).toAlignedRect()
        if exposed.isEmpty():
            return
        painter.drawImage(exposed, self._layer.overlay_image(), exposed)

    def _on_changed(self, left: int, top: int, width: int, height: int) -> None:
        self.update(QRectF(left, top, width, height))
