import numpy as np, time
from PySide6.QtCore import QPointF

def test_smoke(make_window, qtbot, photo):
    w = make_window()
    print(w.model_info())
    w.set_photo(photo, source_name="p")
    layer = w.mask_layer()
    layer.begin_stroke(QPointF(30, 20), diameter=8, erase=False); layer.end_stroke()
    w.task_panel.set_task("inpaint")
    with qtbot.waitSignal(w.engine_controller.worker.runEnded, timeout=120_000):
        assert w.start_restore()
    print("frames", w.frames_shown, w.history.count(), w.progress_panel.progress_bar.value(), w.progress_panel.status_label.text())
    qtbot.waitUntil(lambda: w._last_description is not None, timeout=10000)
    print(w._last_description.stages, w._last_description.problem)
    w.grab().save("/tmp/smoke.png")
