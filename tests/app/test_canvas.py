"""Canvas: view ↔ image coordinates under zoom and pan, painting with the mouse, the ROI square."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from dgp_studio.canvas import ImageCanvas, Tool, largest_centred_square

IMAGE_WIDTH, IMAGE_HEIGHT = 500, 300


@pytest.fixture
def canvas(qtbot):
    view = ImageCanvas()
    qtbot.addWidget(view)
    view.resize(400, 300)
    view.show()
    qtbot.waitExposed(view)
    view.set_photo(np.full((IMAGE_HEIGHT, IMAGE_WIDTH, 3), 128, dtype=np.uint8))
    QApplication.processEvents()
    return view


def send_wheel(view: ImageCanvas, position: QPointF, delta: int, modifiers=Qt.KeyboardModifier.NoModifier):
    event = QWheelEvent(
        position,
        view.viewport().mapToGlobal(position),
        QPoint(0, 0),
        QPoint(0, delta),
        Qt.MouseButton.NoButton,
        modifiers,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(view.viewport(), event)


def test_view_point_maps_to_image_pixel_after_zoom_and_scroll(canvas):
    canvas.set_zoom(2.0)
    QApplication.processEvents()
    canvas.horizontalScrollBar().setValue(100)
    canvas.verticalScrollBar().setValue(60)
    assert canvas.zoom_factor() == pytest.approx(2.0)
    # Scene = image pixels; at ×2 the viewport's origin shows image point (scroll / 2).
    point = canvas.map_view_to_image(QPointF(10, 20))
    assert (point.x(), point.y()) == pytest.approx(((100 + 10) / 2, (60 + 20) / 2))
    assert canvas.image_pixel_at(QPointF(10, 20)) == (55, 40)


def test_clicking_with_the_brush_paints_the_mapped_image_pixel(canvas, qtbot):
    canvas.set_zoom(4.0)
    QApplication.processEvents()
    canvas.horizontalScrollBar().setValue(300)
    canvas.verticalScrollBar().setValue(200)
    canvas.set_tool(Tool.BRUSH)
    canvas.set_brush_size(1.0)
    view_point = QPoint(42, 30)
    column, row = canvas.image_pixel_at(QPointF(view_point))
    assert (column, row) == ((300 + 42) // 4, (200 + 30) // 4)
    # Aim at the pixel's centre so a 1 px brush paints exactly it.
    centre = QPointF(column + 0.5, row + 0.5)
    target = canvas.viewportTransform().map(centre).toPoint()
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=target)
    mask = canvas.mask_layer().array
    assert mask.sum() == 1
    assert mask[row, column] == 1


def test_wheel_zoom_keeps_the_image_point_under_the_cursor(canvas):
    canvas.set_zoom(1.0)
    QApplication.processEvents()
    anchor = QPointF(150, 120)
    before = canvas.map_view_to_image(anchor)
    send_wheel(canvas, anchor, 240)  # two notches in
    assert canvas.zoom_factor() > 1.3
    after = canvas.map_view_to_image(anchor)
    # Scroll bars move in whole view pixels: allow one view pixel of error.
    tolerance = 1.0 / canvas.zoom_factor()
    assert abs(after.x() - before.x()) <= tolerance and abs(after.y() - before.y()) <= tolerance


def test_middle_button_drag_pans_by_the_drag_distance(canvas, qtbot):
    canvas.set_zoom(2.0)
    QApplication.processEvents()
    canvas.horizontalScrollBar().setValue(200)
    canvas.verticalScrollBar().setValue(150)
    probe = QPointF(100, 100)
    before = canvas.map_view_to_image(probe)
    qtbot.mousePress(canvas.viewport(), Qt.MouseButton.MiddleButton, pos=QPoint(100, 100))
    qtbot.mouseMove(canvas.viewport(), QPoint(140, 130))
    qtbot.mouseRelease(canvas.viewport(), Qt.MouseButton.MiddleButton, pos=QPoint(140, 130))
    after = canvas.map_view_to_image(probe)
    # Dragging right/down by (40, 30) view pixels brings content from the left/top: -(20, 15) image pixels.
    assert (after.x() - before.x(), after.y() - before.y()) == pytest.approx((-20, -15))
    assert canvas.mask_layer().is_empty()  # panning never paints


def test_space_drag_pans_instead_of_painting(canvas, qtbot):
    canvas.set_zoom(2.0)
    QApplication.processEvents()
    canvas.horizontalScrollBar().setValue(200)
    canvas.setFocus()
    start_value = canvas.horizontalScrollBar().value()
    qtbot.keyPress(canvas, Qt.Key.Key_Space)
    qtbot.mousePress(canvas.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(200, 100))
    qtbot.mouseMove(canvas.viewport(), QPoint(150, 100))
    qtbot.mouseRelease(canvas.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(150, 100))
    qtbot.keyRelease(canvas, Qt.Key.Key_Space)
    assert canvas.horizontalScrollBar().value() == start_value + 50
    assert canvas.mask_layer().is_empty()


def test_fit_and_actual_size(canvas):
    canvas.zoom_actual_size()
    assert canvas.zoom_factor() == pytest.approx(1.0)
    canvas.fit_to_window()
    viewport = canvas.viewport().rect()
    assert canvas.zoom_factor() == pytest.approx(
        min(viewport.width() / IMAGE_WIDTH, viewport.height() / IMAGE_HEIGHT)
    )


def test_default_roi_is_the_largest_centred_square(canvas):
    assert canvas.roi() == (100, 0, 300)
    assert largest_centred_square(300, 500) == (0, 100, 300)


def test_region_tool_drags_the_square_and_keeps_it_inside_the_image(canvas, qtbot):
    canvas.set_zoom(1.0)
    QApplication.processEvents()
    canvas.horizontalScrollBar().setValue(0)
    canvas.verticalScrollBar().setValue(0)
    canvas.set_roi(100, 50, 120)
    canvas.set_tool(Tool.REGION)
    to_view = canvas.viewportTransform().map
    start = to_view(QPointF(160, 110)).toPoint()  # inside the square
    qtbot.mousePress(canvas.viewport(), Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(canvas.viewport(), start + QPoint(30, -20))
    qtbot.mouseRelease(canvas.viewport(), Qt.MouseButton.LeftButton, pos=start + QPoint(30, -20))
    assert canvas.roi() == (130, 30, 120)
    assert canvas.mask_layer().is_empty()  # the Region tool never paints
    canvas.set_roi(450, 250, 120)  # asked to go past the corner
    assert canvas.roi() == (IMAGE_WIDTH - 120, IMAGE_HEIGHT - 120, 120)


def test_region_corner_drag_resizes_as_a_square_from_the_opposite_corner(canvas, qtbot):
    canvas.set_zoom(1.0)
    QApplication.processEvents()
    canvas.horizontalScrollBar().setValue(0)
    canvas.verticalScrollBar().setValue(0)
    canvas.set_roi(100, 50, 100)
    canvas.set_tool(Tool.REGION)
    to_view = canvas.viewportTransform().map
    corner = to_view(QPointF(200, 150)).toPoint()  # bottom-right handle
    qtbot.mousePress(canvas.viewport(), Qt.MouseButton.LeftButton, pos=corner)
    qtbot.mouseMove(canvas.viewport(), corner + QPoint(40, 10))
    qtbot.mouseRelease(canvas.viewport(), Qt.MouseButton.LeftButton, pos=corner + QPoint(40, 10))
    assert canvas.roi() == (100, 50, 140)  # the larger reach wins, top-left fixed


def test_brush_size_from_alt_wheel_and_the_outline_follows_the_pointer(canvas, qtbot):
    canvas.set_tool(Tool.BRUSH)
    canvas.set_brush_size(20)
    send_wheel(canvas, QPointF(50, 50), 120, Qt.KeyboardModifier.AltModifier)
    assert canvas.brush_size() == pytest.approx(25)
    send_wheel(canvas, QPointF(50, 50), -120, Qt.KeyboardModifier.AltModifier)
    assert canvas.brush_size() == pytest.approx(20)
    qtbot.mouseMove(canvas.viewport(), QPoint(120, 90))
    outline = canvas.brush_outline_rect()
    assert outline is not None
    centre = canvas.map_view_to_image(QPointF(120, 90))
    assert outline.center().x() == pytest.approx(centre.x()) and outline.width() == pytest.approx(20)


def test_rectangle_tool_fills_and_shift_erases(canvas, qtbot):
    canvas.set_zoom(1.0)
    QApplication.processEvents()
    canvas.horizontalScrollBar().setValue(0)
    canvas.verticalScrollBar().setValue(0)
    canvas.set_tool(Tool.RECTANGLE)
    to_view = canvas.viewportTransform().map
    start, end = to_view(QPointF(10, 20)).toPoint(), to_view(QPointF(30, 50)).toPoint()
    qtbot.mousePress(canvas.viewport(), Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(canvas.viewport(), end)
    qtbot.mouseRelease(canvas.viewport(), Qt.MouseButton.LeftButton, pos=end)
    mask = canvas.mask_layer().array
    assert mask[20:50, 10:30].all() and mask.sum() == 20 * 30
    qtbot.mousePress(canvas.viewport(), Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(canvas.viewport(), end)
    qtbot.mouseRelease(canvas.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier, end)
    assert canvas.mask_layer().is_empty()


def test_split_fraction_and_show_original_hide_the_result(canvas):
    canvas.set_result_image(np.zeros((IMAGE_HEIGHT, IMAGE_WIDTH, 3), dtype=np.uint8))
    assert canvas.result_visible()
    canvas.set_show_original(True)
    assert not canvas.result_visible()
    canvas.set_show_original(False)
    assert canvas.result_visible()
    canvas.set_split_fraction(0.5)
    canvas.fit_to_window()
    QApplication.processEvents()
    grabbed = canvas.viewport().grab().toImage()
    to_view = canvas.viewportTransform().map
    # Inside the region of interest (columns 100…399), so nothing dims them.
    left = to_view(QPointF(170, 150)).toPoint()  # the original (grey 128) shows through
    right = to_view(QPointF(330, 150)).toPoint()  # the black result
    assert grabbed.pixelColor(left).red() > 110
    assert grabbed.pixelColor(right).red() < 20
