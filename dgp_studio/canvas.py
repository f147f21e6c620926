"""The photo canvas: zoom, pan, mask painting, the region of interest and result display.

Built on ``QGraphicsView``/``QGraphicsScene``. Scene coordinates *are* image
pixel coordinates (the photo item sits at the origin, unscaled), so
``map_view_to_image`` is the view's inverse viewport transform and nothing else.

Interaction
-----------
* Wheel: zoom around the pointer. Alt+wheel: brush size. ``[`` / ``]`` (window
  shortcuts) also change it.
* Pan: hold Space and drag, drag with the middle button, or use the Hand tool.
* Brush / Eraser paint the mask (:mod:`dgp_studio.mask`); Rectangle fills a
  box (Shift erases it); Region moves and resizes the square sent to the model.
"""

from __future__ import annotations

import enum
import math

import numpy as np
from PySide6.QtCore import QEvent, QPoint, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QDragEnterEvent,
    QDropEvent,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPen,
    QPixmap,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QGraphicsEllipseItem,
    QGraphicsLineItem,
    QGraphicsObject,
    QGraphicsPixmapItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsSceneHoverEvent,
    QGraphicsSceneMouseEvent,
    QGraphicsView,
    QStyleOptionGraphicsItem,
    QWidget,
)

from dgp_studio.imaging import rgb_to_qimage, rgba_to_qimage
from dgp_studio.mask import BRUSH_SIZE_STEP, MaskLayer, MaskOverlayItem, clamp_brush_size

MIN_ZOOM = 0.02
MAX_ZOOM = 32.0
WHEEL_ZOOM_BASE = 1.0015  # per wheel-delta unit: one notch (120) ≈ ×1.2
MIN_ROI_SIZE = 8  # pixels; below this the model sees almost nothing
ROI_HANDLE_VIEW_PIXELS = 9.0  # corner handle size on screen, whatever the zoom


class Tool(enum.Enum):
    """What a left-button drag on the canvas does."""

    BRUSH = "brush"
    ERASER = "eraser"
    RECTANGLE = "rectangle"
    REGION = "region"
    HAND = "hand"


def largest_centred_square(width: int, height: int) -> tuple[int, int, int]:
    """``(left, top, size)`` of the largest square centred in a ``width × height`` image."""
    size = min(width, height)
    return (width - size) // 2, (height - size) // 2, size


class RoiItem(QGraphicsObject):
    """The square region of interest: dims the outside, drags to move, corners resize.

    Signals
    -------
    roiChanged(int, int, int)
        ``left, top, size`` in image pixels, after every change.
    """

    roiChanged = Signal(int, int, int)

    def __init__(self, image_width: int, image_height: int) -> None:
        super().__init__()
        self._image_width = image_width
        self._image_height = image_height
        self._left, self._top, self._size = largest_centred_square(image_width, image_height)
        self._interactive = False
        self._drag_mode: str | None = None  # "move" or a corner name
        self._drag_origin = QPointF()
        self._drag_start_roi = (0, 0, 0)
        self.setAcceptHoverEvents(True)
        self.setZValue(30)

    # ---------------------------------------------------------------- state

    def roi(self) -> tuple[int, int, int]:
        return self._left, self._top, self._size

    def set_roi(self, left: int, top: int, size: int) -> None:
        """Set the square, clamped to lie inside the image (size first, then position)."""
        size = int(
            min(
                max(size, min(MIN_ROI_SIZE, self._image_width, self._image_height)),
                self._image_width,
                self._image_height,
            )
        )
        left = int(min(max(left, 0), self._image_width - size))
        top = int(min(max(top, 0), self._image_height - size))
        if (left, top, size) == (self._left, self._top, self._size):
            return
        self.prepareGeometryChange()
        self._left, self._top, self._size = left, top, size
        self.update()
        self.roiChanged.emit(left, top, size)

    def set_interactive(self, interactive: bool) -> None:
        """Whether the mouse moves/resizes the square (the Region tool)."""
        self._interactive = interactive
        self.setAcceptedMouseButtons(Qt.MouseButton.LeftButton if interactive else Qt.MouseButton.NoButton)
        self.setAcceptHoverEvents(interactive)
        self.prepareGeometryChange()
        self.update()

    def roi_rect(self) -> QRectF:
        return QRectF(self._left, self._top, self._size, self._size)

    # ------------------------------------------------------------- geometry

    def _handle_size(self) -> float:
        views = self.scene().views() if self.scene() is not None else []
        scale = views[0].transform().m11() if views else 1.0
        return ROI_HANDLE_VIEW_PIXELS / max(scale, 1e-6)

    def _corners(self) -> dict[str, QPointF]:
        rect = self.roi_rect()
        return {
            "top_left": rect.topLeft(),
            "top_right": rect.topRight(),
            "bottom_left": rect.bottomLeft(),
            "bottom_right": rect.bottomRight(),
        }

    def boundingRect(self) -> QRectF:
        margin = self._handle_size()
        return QRectF(0, 0, self._image_width, self._image_height).adjusted(-margin, -margin, margin, margin)

    def shape(self) -> QPainterPath:
        # Only the square (plus its handles) takes the mouse, and only for the
        # Region tool; elsewhere clicks fall through to the canvas tools.
        path = QPainterPath()
        if self._interactive:
            margin = self._handle_size()
            path.addRect(self.roi_rect().adjusted(-margin, -margin, margin, margin))
        return path

    def _hit(self, point: QPointF) -> str | None:
        half = self._handle_size()
        for name, corner in self._corners().items():
            if abs(point.x() - corner.x()) <= half and abs(point.y() - corner.y()) <= half:
                return name
        return "move" if self.roi_rect().contains(point) else None

    # ---------------------------------------------------------------- paint

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        outside = QPainterPath()
        outside.addRect(QRectF(0, 0, self._image_width, self._image_height))
        inside = QPainterPath()
        inside.addRect(self.roi_rect())
        painter.fillPath(outside.subtracted(inside), QColor(0, 0, 0, 90))
        light = QPen(QColor(255, 255, 255, 230), 2)
        light.setCosmetic(True)
        dark = QPen(QColor(0, 0, 0, 200), 2, Qt.PenStyle.DashLine)
        dark.setCosmetic(True)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(light)
        painter.drawRect(self.roi_rect())
        painter.setPen(dark)
        painter.drawRect(self.roi_rect())
        if self._interactive:
            half = self._handle_size() / 2
            painter.setPen(dark)
            painter.setBrush(QColor(255, 255, 255))
            for corner in self._corners().values():
                painter.drawRect(QRectF(corner.x() - half, corner.y() - half, 2 * half, 2 * half))

    # ---------------------------------------------------------------- mouse

    def hoverMoveEvent(self, event: QGraphicsSceneHoverEvent) -> None:
        part = self._hit(event.pos())
        if part in ("top_left", "bottom_right"):
            self.setCursor(Qt.CursorShape.SizeFDiagCursor)
        elif part in ("top_right", "bottom_left"):
            self.setCursor(Qt.CursorShape.SizeBDiagCursor)
        elif part == "move":
            self.setCursor(Qt.CursorShape.SizeAllCursor)
        else:
            self.unsetCursor()

    def mousePressEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        part = self._hit(event.pos()) if self._interactive else None
        if part is None or event.button() != Qt.MouseButton.LeftButton:
            event.ignore()
            return
        self._drag_mode = part
        self._drag_origin = event.pos()
        self._drag_start_roi = self.roi()
        event.accept()

    def mouseMoveEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        if self._drag_mode is None:
            return
        left, top, size = self._drag_start_roi
        if self._drag_mode == "move":
            delta = event.pos() - self._drag_origin
            self.set_roi(round(left + delta.x()), round(top + delta.y()), size)
            return
        # Resizing keeps the opposite corner fixed and the shape square.
        anchor_x = left + size if "left" in self._drag_mode else left
        anchor_y = top + size if "top" in self._drag_mode else top
        grow_left = "left" in self._drag_mode
        grow_up = "top" in self._drag_mode
        reach_x = anchor_x - event.pos().x() if grow_left else event.pos().x() - anchor_x
        reach_y = anchor_y - event.pos().y() if grow_up else event.pos().y() - anchor_y
        room_x = anchor_x if grow_left else self._image_width - anchor_x
        room_y = anchor_y if grow_up else self._image_height - anchor_y
        new_size = round(max(reach_x, reach_y))
        new_size = max(min(new_size, room_x, room_y), min(MIN_ROI_SIZE, room_x, room_y))
        new_left = anchor_x - new_size if grow_left else anchor_x
        new_top = anchor_y - new_size if grow_up else anchor_y
        self.set_roi(new_left, new_top, new_size)

    def mouseReleaseEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        self._drag_mode = None


class ResultItem(QGraphicsPixmapItem):
    """The restoration shown over the photo; left of the split line the photo shows through."""

    def __init__(self) -> None:
        super().__init__()
        self._split_scene_x = 0.0
        self.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.setZValue(10)

    def set_split_scene_x(self, scene_x: float) -> None:
        self._split_scene_x = scene_x
        self.update()

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        local_split = self.mapFromScene(QPointF(self._split_scene_x, 0)).x()
        bounds = self.boundingRect()
        if local_split >= bounds.right():
            return
        if local_split > bounds.left():
            painter.setClipRect(
                QRectF(local_split, bounds.top(), bounds.right() - local_split, bounds.height())
            )
        super().paint(painter, option, widget)


class ImageCanvas(QGraphicsView):
    """Zoomable, pannable photo view with mask painting and a region of interest.

    Signals
    -------
    filesDropped(list)
        Local file paths dropped on the canvas.
    brushSizeChanged(float)
        New brush diameter in image pixels.
    roiChanged(int, int, int)
        ``left, top, size`` of the region of interest.
    zoomChanged(float)
        View pixels per image pixel.
    maskVisibilityChanged(bool)
        The mask overlay was shown or hidden (painting always shows it).
    pointerMoved(int, int)
        Image pixel under the pointer (may lie outside the image).
    """

    filesDropped = Signal(list)
    maskVisibilityChanged = Signal(bool)
    brushSizeChanged = Signal(float)
    roiChanged = Signal(int, int, int)
    zoomChanged = Signal(float)
    pointerMoved = Signal(int, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        self.setBackgroundBrush(QBrush(QColor(38, 38, 42)))
        self.setMouseTracking(True)
        self.setAcceptDrops(True)
        self.viewport().setAcceptDrops(True)  # drops arrive at the viewport, then reach dropEvent below
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)

        self._image_width = 0
        self._image_height = 0
        self._photo_item = QGraphicsPixmapItem()
        self._photo_item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self._photo_item.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.scene().addItem(self._photo_item)
        self._result_item = ResultItem()
        self._result_item.setVisible(False)
        self.scene().addItem(self._result_item)
        self._split_line = QGraphicsLineItem()
        split_pen = QPen(QColor(255, 255, 255), 2)
        split_pen.setCosmetic(True)
        self._split_line.setPen(split_pen)
        self._split_line.setZValue(40)
        self._split_line.setVisible(False)
        self.scene().addItem(self._split_line)
        self._mask_layer: MaskLayer | None = None
        self._mask_item: MaskOverlayItem | None = None
        self._roi_item: RoiItem | None = None
        self._brush_outline = QGraphicsEllipseItem()
        outline_pen = QPen(QColor(255, 255, 255), 1, Qt.PenStyle.DashLine)
        outline_pen.setCosmetic(True)
        self._brush_outline.setPen(outline_pen)
        self._brush_outline.setZValue(50)
        self._brush_outline.setVisible(False)
        self._brush_outline.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.scene().addItem(self._brush_outline)
        self._rect_preview = QGraphicsRectItem()
        rect_pen = QPen(QColor(255, 255, 255), 1, Qt.PenStyle.DashLine)
        rect_pen.setCosmetic(True)
        self._rect_preview.setPen(rect_pen)
        self._rect_preview.setBrush(QColor(255, 40, 90, 60))
        self._rect_preview.setZValue(45)
        self._rect_preview.setVisible(False)
        self.scene().addItem(self._rect_preview)

        self._tool = Tool.BRUSH
        self._brush_size = 24.0
        self._space_held = False
        self._pan_last: QPointF | None = None
        self._rect_anchor: QPointF | None = None
        self._fit_mode = True
        self._split_fraction = 0.0
        self._showing_original = False
        self._painting_enabled = True
        self._mask_visible = True

    # ================================================================ photo

    def has_photo(self) -> bool:
        return self._image_width > 0

    def photo_size(self) -> tuple[int, int]:
        """``(width, height)`` of the photo, (0, 0) when none is loaded."""
        return self._image_width, self._image_height

    def set_photo(self, rgb: np.ndarray) -> MaskLayer:
        """Show a new photo (``(H, W, 3)`` ``uint8``); returns its fresh, empty mask layer."""
        height, width = rgb.shape[:2]
        self._photo_item.setPixmap(QPixmap.fromImage(rgb_to_qimage(rgb)))
        self._image_width, self._image_height = width, height
        self.scene().setSceneRect(QRectF(0, 0, width, height))
        self.clear_result()
        self.set_mask_layer(MaskLayer(width, height, parent=self))
        if self._roi_item is not None:
            self.scene().removeItem(self._roi_item)
            self._roi_item.deleteLater()
        self._roi_item = RoiItem(width, height)
        self._roi_item.set_interactive(self._tool is Tool.REGION)
        self._roi_item.roiChanged.connect(self.roiChanged)
        self.scene().addItem(self._roi_item)
        self._split_line.setLine(0, 0, 0, height)
        self._apply_split()
        self.fit_to_window()
        self.roiChanged.emit(*self._roi_item.roi())
        assert self._mask_layer is not None
        return self._mask_layer

    def mask_layer(self) -> MaskLayer | None:
        return self._mask_layer

    def set_mask_layer(self, layer: MaskLayer) -> None:
        """Replace the mask layer (same size as the photo) and its overlay."""
        if self._mask_item is not None:
            self.scene().removeItem(self._mask_item)
        if (
            self._mask_layer is not None
            and self._mask_layer is not layer
            and self._mask_layer.parent() is self
        ):
            self._mask_layer.deleteLater()
        self._mask_layer = layer
        self._mask_item = MaskOverlayItem(layer)
        self._mask_item.setZValue(20)
        self._mask_item.setVisible(self._mask_visible)
        self.scene().addItem(self._mask_item)

    def set_mask_visible(self, visible: bool) -> None:
        """Show or hide the mask overlay (the mask itself is unchanged)."""
        self._mask_visible = visible
        if self._mask_item is not None and self._mask_item.isVisible() != visible:
            self._mask_item.setVisible(visible)
            self.maskVisibilityChanged.emit(visible)

    def mask_visible(self) -> bool:
        return self._mask_visible

    # =============================================================== result

    def set_result_image(
        self, rgb: np.ndarray | None, *, rect: tuple[int, int, int, int] | None = None
    ) -> None:
        """Show a result over the photo, fitted to ``rect`` (left, top, width, height; default the photo).

        A super-resolved result has more pixels than the photo: it is drawn scaled into
        the rectangle it restores, so compare and hold-to-compare line up with the photo.
        None hides it.
        """
        if rgb is None:
            self.clear_result()
            return
        self._place_result(rgb_to_qimage(rgb), rgb.shape[1], rgb.shape[0], rect)

    def show_preview(self, rgb: np.ndarray, *, rect: tuple[int, int, int, int] | None = None) -> None:
        """Show a live preview (the restore so far at a display scale) stretched over ``rect`` or the photo."""
        self._place_result(rgb_to_qimage(rgb), rgb.shape[1], rgb.shape[0], rect)

    def _place_result(self, image, width: int, height: int, rect: tuple[int, int, int, int] | None) -> None:
        left, top, target_width, target_height = rect or (0, 0, self._image_width, self._image_height)
        self._result_item.setPixmap(QPixmap.fromImage(image))
        self._result_item.setTransform(
            QTransform.fromScale(target_width / max(width, 1), target_height / max(height, 1))
        )
        self._result_item.setPos(left, top)
        self._result_item.setVisible(not self._showing_original)

    def set_roi_visible(self, visible: bool) -> None:
        """Show or hide the region-of-interest frame (hidden while restores cover the whole photo)."""
        if self._roi_item is not None:
            self._roi_item.setVisible(visible)

    def show_live_frame(
        self, rgb: np.ndarray, *, roi: tuple[int, int, int] | None = None, alpha: np.ndarray | None = None
    ) -> None:
        """Show a model-resolution frame stretched over ``roi`` (default: the current region of interest).

        ``alpha`` (``(R, R)`` ``uint8``, 255 = shown) limits it to part of the
        square, e.g. the painted pixels while inpainting.
        """
        if self._roi_item is None:
            return
        left, top, size = roi if roi is not None else self._roi_item.roi()
        image = rgb_to_qimage(rgb) if alpha is None else rgba_to_qimage(rgb, alpha)
        self._result_item.setPixmap(QPixmap.fromImage(image))
        scale = size / max(rgb.shape[1], 1)
        self._result_item.setTransform(QTransform.fromScale(scale, scale))
        self._result_item.setPos(left, top)
        self._result_item.setVisible(not self._showing_original)

    def clear_result(self) -> None:
        self._result_item.setPixmap(QPixmap())
        self._result_item.setVisible(False)

    def has_result(self) -> bool:
        return not self._result_item.pixmap().isNull()

    def result_visible(self) -> bool:
        return self._result_item.isVisible()

    def set_show_original(self, show_original: bool) -> None:
        """Hide the result so the untouched photo shows (the hold-Tab compare)."""
        self._showing_original = show_original
        self._result_item.setVisible(self.has_result() and not show_original)
        if self._mask_item is not None:
            self._mask_item.setOpacity(0.0 if show_original else 0.55)

    def set_split_fraction(self, fraction: float) -> None:
        """Show the original left of ``fraction × width`` and the result right of it (0 = all result)."""
        self._split_fraction = float(min(max(fraction, 0.0), 1.0))
        self._apply_split()

    def split_fraction(self) -> float:
        return self._split_fraction

    def _apply_split(self) -> None:
        split_x = self._split_fraction * self._image_width
        self._result_item.set_split_scene_x(split_x)
        self._split_line.setPos(split_x, 0)
        self._split_line.setVisible(0.0 < self._split_fraction < 1.0 and self.has_photo())

    # ================================================================= ROI

    def roi(self) -> tuple[int, int, int]:
        """``(left, top, size)`` of the region of interest; (0, 0, 0) without a photo."""
        return self._roi_item.roi() if self._roi_item is not None else (0, 0, 0)

    def set_roi(self, left: int, top: int, size: int) -> None:
        if self._roi_item is not None:
            self._roi_item.set_roi(left, top, size)

    def reset_roi(self) -> None:
        """Back to the largest centred square."""
        if self._roi_item is not None:
            self._roi_item.set_roi(*largest_centred_square(self._image_width, self._image_height))

    # ================================================================= zoom

    def zoom_factor(self) -> float:
        """View pixels per image pixel."""
        return self.transform().m11()

    def set_zoom(self, factor: float, *, anchor: QPointF | None = None) -> None:
        """Zoom to ``factor`` keeping the image point under ``anchor`` (view coordinates) in place.

        Without an anchor the view's centre is kept. Leaves "fit to window" mode.
        """
        self._fit_mode = False
        self._apply_zoom(factor, anchor=anchor)

    def _apply_zoom(self, factor: float, *, anchor: QPointF | None = None) -> None:
        factor = float(min(max(factor, MIN_ZOOM), MAX_ZOOM))
        if anchor is None:
            anchor = QPointF(self.viewport().width() / 2, self.viewport().height() / 2)
        anchored_scene_point = self.map_view_to_image(anchor)
        self.setTransform(QTransform.fromScale(factor, factor))
        # Scroll so that the anchored image point is under the anchor again.
        landed = self.viewportTransform().map(anchored_scene_point)
        self.horizontalScrollBar().setValue(
            self.horizontalScrollBar().value() + round(landed.x() - anchor.x())
        )
        self.verticalScrollBar().setValue(self.verticalScrollBar().value() + round(landed.y() - anchor.y()))
        self._update_brush_outline_size()
        self.zoomChanged.emit(factor)

    def zoom_by(self, ratio: float, *, anchor: QPointF | None = None) -> None:
        self.set_zoom(self.zoom_factor() * ratio, anchor=anchor)

    def zoom_in(self) -> None:
        self.zoom_by(1.25)

    def zoom_out(self) -> None:
        self.zoom_by(1 / 1.25)

    def zoom_actual_size(self) -> None:
        """100 %: one image pixel per view pixel."""
        self.set_zoom(1.0)

    def fit_to_window(self) -> None:
        """Show the whole photo, and keep doing so when the window resizes (until the user zooms)."""
        self._fit_mode = True
        if not self.has_photo():
            return
        viewport = self.viewport().rect()
        factor = min(viewport.width() / self._image_width, viewport.height() / self._image_height)
        self._apply_zoom(max(factor, MIN_ZOOM))
        self.centerOn(self._image_width / 2, self._image_height / 2)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._fit_mode:
            self.fit_to_window()

    # ============================================================ mapping

    def map_view_to_image(self, view_point: QPointF | QPoint) -> QPointF:
        """Image pixel coordinates (continuous) of a viewport point."""
        point = QPointF(view_point)
        inverse, invertible = self.viewportTransform().inverted()
        return inverse.map(point) if invertible else QPointF()

    def image_pixel_at(self, view_point: QPointF | QPoint) -> tuple[int, int] | None:
        """``(column, row)`` of the image pixel under a viewport point, or None outside the image."""
        point = self.map_view_to_image(view_point)
        column, row = math.floor(point.x()), math.floor(point.y())
        if 0 <= column < self._image_width and 0 <= row < self._image_height:
            return column, row
        return None

    # ============================================================== tools

    def tool(self) -> Tool:
        return self._tool

    def set_tool(self, tool: Tool) -> None:
        self._tool = tool
        if self._roi_item is not None:
            self._roi_item.set_interactive(tool is Tool.REGION)
        self._update_cursor()
        self._brush_outline.setVisible(False)

    def set_painting_enabled(self, enabled: bool) -> None:
        """Mask edits are refused while a run uses the mask."""
        self._painting_enabled = enabled

    def brush_size(self) -> float:
        """Brush diameter in image pixels."""
        return self._brush_size

    def set_brush_size(self, size: float) -> None:
        size = clamp_brush_size(size)
        if size == self._brush_size:
            return
        self._brush_size = size
        self._update_brush_outline_size()
        self.brushSizeChanged.emit(size)

    def grow_brush(self) -> None:
        self.set_brush_size(max(self._brush_size * BRUSH_SIZE_STEP, self._brush_size + 1))

    def shrink_brush(self) -> None:
        self.set_brush_size(min(self._brush_size / BRUSH_SIZE_STEP, self._brush_size - 1))

    def _update_cursor(self) -> None:
        if self._pan_last is not None:
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
        elif self._space_held or self._tool is Tool.HAND:
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
        elif self._tool in (Tool.BRUSH, Tool.ERASER, Tool.RECTANGLE):
            self.viewport().setCursor(Qt.CursorShape.CrossCursor)
        else:
            self.viewport().unsetCursor()

    def _update_brush_outline_size(self, centre: QPointF | None = None) -> None:
        if centre is None:
            centre = self._brush_outline.rect().center()
        radius = self._brush_size / 2
        self._brush_outline.setRect(QRectF(centre.x() - radius, centre.y() - radius, 2 * radius, 2 * radius))

    def brush_outline_rect(self) -> QRectF | None:
        """The brush outline in image coordinates while it is shown, else None."""
        return self._brush_outline.rect() if self._brush_outline.isVisible() else None

    # ============================================================== mouse

    def mousePressEvent(self, event: QMouseEvent) -> None:
        button = event.button()
        wants_pan = button == Qt.MouseButton.MiddleButton or (
            button == Qt.MouseButton.LeftButton and (self._space_held or self._tool is Tool.HAND)
        )
        if wants_pan:
            self._pan_last = event.position()
            self._update_cursor()
            event.accept()
            return
        if button == Qt.MouseButton.LeftButton and self.has_photo() and self._painting_enabled:
            image_point = self.map_view_to_image(event.position())
            if self._tool in (Tool.BRUSH, Tool.ERASER, Tool.RECTANGLE):
                self.set_mask_visible(True)  # never paint blind
            if self._tool in (Tool.BRUSH, Tool.ERASER) and self._mask_layer is not None:
                self._mask_layer.begin_stroke(
                    image_point, diameter=self._brush_size, erase=self._tool is Tool.ERASER
                )
                event.accept()
                return
            if self._tool is Tool.RECTANGLE:
                self._rect_anchor = image_point
                self._rect_preview.setRect(QRectF(image_point, image_point))
                self._rect_preview.setVisible(True)
                event.accept()
                return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        image_point = self.map_view_to_image(event.position())
        self.pointerMoved.emit(math.floor(image_point.x()), math.floor(image_point.y()))
        if self._pan_last is not None:
            delta = event.position() - self._pan_last
            self._pan_last = event.position()
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - round(delta.x()))
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - round(delta.y()))
            event.accept()
            return
        show_outline = self.has_photo() and self._tool in (Tool.BRUSH, Tool.ERASER) and not self._space_held
        self._brush_outline.setVisible(show_outline)
        if show_outline:
            self._update_brush_outline_size(image_point)
        if self._mask_layer is not None and self._mask_layer.stroke_in_progress:
            self._mask_layer.stroke_to(image_point)
            event.accept()
            return
        if self._rect_anchor is not None:
            self._rect_preview.setRect(QRectF(self._rect_anchor, image_point).normalized())
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._pan_last is not None and event.button() in (
            Qt.MouseButton.MiddleButton,
            Qt.MouseButton.LeftButton,
        ):
            self._pan_last = None
            self._update_cursor()
            event.accept()
            return
        if event.button() == Qt.MouseButton.LeftButton:
            if self._mask_layer is not None and self._mask_layer.stroke_in_progress:
                self._mask_layer.stroke_to(self.map_view_to_image(event.position()))
                self._mask_layer.end_stroke()
                event.accept()
                return
            if self._rect_anchor is not None and self._mask_layer is not None:
                end = self.map_view_to_image(event.position())
                erase = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
                self._mask_layer.fill_rect(
                    self._rect_anchor.x(), self._rect_anchor.y(), end.x(), end.y(), erase=erase
                )
                self._rect_anchor = None
                self._rect_preview.setVisible(False)
                event.accept()
                return
        super().mouseReleaseEvent(event)

    def leaveEvent(self, event: QEvent) -> None:
        self._brush_outline.setVisible(False)
        super().leaveEvent(event)

    def wheelEvent(self, event: QWheelEvent) -> None:
        # Some platforms turn Alt+wheel into a horizontal scroll, so take either axis.
        delta = event.angleDelta().y() or event.angleDelta().x()
        if delta == 0:
            event.ignore()
            return
        if event.modifiers() & Qt.KeyboardModifier.AltModifier:
            if delta > 0:
                self.grow_brush()
            else:
                self.shrink_brush()
            event.accept()
            return
        if self.has_photo():
            self.zoom_by(WHEEL_ZOOM_BASE**delta, anchor=event.position())
        event.accept()

    # ============================================================ keyboard

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space:
            if not event.isAutoRepeat():
                self._space_held = True
                self._brush_outline.setVisible(False)
                self._update_cursor()
            event.accept()
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space:
            if not event.isAutoRepeat():
                self._space_held = False
                self._update_cursor()
            event.accept()
            return
        super().keyReleaseEvent(event)

    def focusOutEvent(self, event) -> None:
        # A released Space that went to another widget must not leave panning stuck on.
        self._space_held = False
        self._update_cursor()
        super().focusOutEvent(event)

    # ========================================================= drag & drop

    @staticmethod
    def _local_paths(event: QDragEnterEvent | QDropEvent) -> list[str]:
        mime = event.mimeData()
        if not mime.hasUrls():
            return []
        return [url.toLocalFile() for url in mime.urls() if url.isLocalFile()]

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self._local_paths(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        if self._local_paths(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = self._local_paths(event)
        if paths:
            event.acceptProposedAction()
            self.filesDropped.emit(paths)
        else:
            event.ignore()
