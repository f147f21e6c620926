"""Task panel: what each task contributes to the request, presets, advanced knobs, preview."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from dgp_studio.task_panel import TaskPanel
from engine.events import StagePlan


@pytest.fixture
def panel(qtbot):
    widget = TaskPanel()
    qtbot.addWidget(widget)
    widget.show()
    return widget


def test_each_task_sets_the_right_request_fields(panel):
    panel.set_task("colorize")
    options = panel.options()
    assert (options.task, options.sr_factor, options.grayscale, options.use_mask) == (
        "colorize",
        None,
        False,
        False,
    )
    panel.set_task("inpaint")
    assert panel.options().use_mask
    panel.set_task("sr")
    panel.set_sr_factor(8)
    assert (panel.options().task, panel.options().sr_factor) == ("sr", 8)
    panel.set_task("defend")
    assert panel.options().task == "defend" and panel.options().sr_factor is None
    panel.set_task("reconstruct")
    assert panel.options().task == "reconstruct"


def test_hybrid_composes_grayscale_sr_and_mask_from_checkboxes(panel):
    panel.set_task("hybrid")
    panel.set_sr_factor(2)
    panel.hybrid_grayscale.setChecked(True)
    panel.hybrid_sr.setChecked(True)
    panel.hybrid_mask.setChecked(False)
    options = panel.options()
    assert (options.grayscale, options.sr_factor, options.use_mask) == (True, 2, False)
    panel.hybrid_grayscale.setChecked(False)
    panel.hybrid_sr.setChecked(False)
    assert panel.problem() is not None
    panel.hybrid_mask.setChecked(True)
    assert panel.problem() is None and panel.options().use_mask


def test_presets_follow_the_task_and_default_means_none(panel, qtbot):
    panel.set_presets({"inpaint": ["in_a", "in_b"], "colorize": ["col_a"]})
    panel.set_task("inpaint")
    assert [panel.preset_combo.itemData(i) for i in range(panel.preset_combo.count())] == [
        None,
        "in_a",
        "in_b",
    ]
    panel.preset_combo.setCurrentIndex(2)
    assert panel.options().preset == "in_b"
    with qtbot.waitSignal(panel.optionsChanged, timeout=1000):
        panel.set_task("colorize")
    assert panel.options().preset is None
    assert panel.preset_combo.count() == 2


def test_presets_show_their_titles_and_the_default_says_which_it_is(panel):
    panel.set_presets(
        {"sr": ["sr_mse", "sr_d"]},
        titles={"sr_mse": "Super-resolution, MSE-biased", "sr_d": "Super-resolution, D-biased"},
    )
    panel.set_task("sr")
    combo = panel.preset_combo
    assert [combo.itemText(i) for i in range(combo.count())] == [
        "Default for this model: Super-resolution, MSE-biased",
        "Super-resolution, MSE-biased",
        "Super-resolution, D-biased",
    ]
    assert [combo.itemData(i) for i in range(combo.count())] == [None, "sr_mse", "sr_d"]
    assert combo.itemData(2, Qt.ItemDataRole.ToolTipRole) == "sr_d"


def test_advanced_section_collapses_and_holds_seed_scale_and_stages(panel):
    assert not panel.advanced.is_expanded() and not panel.seed_spin.isVisible()
    panel.advanced.toggle_button.click()
    assert panel.advanced.is_expanded() and panel.seed_spin.isVisible()
    panel.seed_spin.setValue(7)
    panel.iteration_scale_spin.setValue(0.5)
    panel.quick_check.setChecked(False)
    options = panel.options()
    assert (options.seed, options.iteration_scale, options.quick) == (7, 0.5, False)
    stages = [
        StagePlan(index=0, iterations=30, unlocked_groups=2, total_groups=5, feature_layers=4),
        StagePlan(index=1, iterations=20, unlocked_groups=5, total_groups=5, feature_layers=8),
    ]
    panel.set_stage_table(stages)
    assert panel.stage_table.rowCount() == 2
    assert panel.stage_table.item(1, 1).text() == "20"
    assert panel.stage_table.item(0, 2).text() == "2 of 5"
    assert "50 iterations" in panel.stage_summary.text()
    assert not panel.stage_table.editTriggers()  # read-only


def test_preview_shows_the_degraded_input_or_the_reason(panel):
    degraded = np.zeros((32, 32, 3), dtype=np.uint8)
    panel.set_preview(degraded)
    assert not panel.preview_label.pixmap().isNull()
    assert panel.preview_image() is degraded
    panel.set_preview(None, message="inpainting needs a mask: paint the missing region first.")
    assert panel.preview_label.pixmap().isNull()
    assert "needs a mask" in panel.preview_label.text()


def test_the_detail_slider_keeps_a_setting_per_task_starting_at_each_tasks_default(qtbot):
    from dgp_studio.task_panel import TaskPanel
    from engine.tasks import DETAIL_TASKS

    panel = TaskPanel()
    qtbot.addWidget(panel)
    panel.set_task("inpaint")
    assert panel.options().detail_strength == DETAIL_TASKS["inpaint"]
    panel.set_task("sr")
    assert panel.options().detail_strength == DETAIL_TASKS["sr"]
    panel.detail_slider.setValue(80)
    panel.set_task("inpaint")
    assert panel.options().detail_strength == DETAIL_TASKS["inpaint"]
    panel.set_task("sr")
    assert panel.options().detail_strength == 0.8
    panel.set_task("colorize")
    assert panel.options().detail_strength is None and not panel._detail_box.isVisibleTo(panel)
