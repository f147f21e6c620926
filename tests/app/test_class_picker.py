"""Class picker: search by name and by index, Auto, and suggestions that re-run."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from dgp_studio.class_picker import AUTO_LABEL, ClassPicker, search_classes
from engine.resources import imagenet_class_names


@pytest.fixture(scope="module")
def imagenet_names() -> list[str]:
    names = imagenet_class_names()
    assert len(names) == 1000
    return names


@pytest.fixture
def picker(qtbot, imagenet_names):
    widget = ClassPicker()
    qtbot.addWidget(widget)
    widget.set_class_names(imagenet_names)
    widget.show()
    return widget


def test_search_finds_goldfish_by_name_and_by_index(imagenet_names):
    assert "goldfish" in imagenet_names[1].lower()
    assert search_classes(imagenet_names, "goldfish")[0] == 1
    assert search_classes(imagenet_names, "GOLDFISH")[0] == 1
    by_index = search_classes(imagenet_names, "1")
    assert by_index[0] == 1  # the exact index first …
    assert set(by_index[1:4]) <= {10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 100}  # … then its prefixes
    assert search_classes(imagenet_names, "1000") == []  # no such class


def test_typing_a_name_shows_goldfish_first_and_enter_selects_it(picker, qtbot):
    qtbot.keyClicks(picker.search_field, "goldf")
    assert picker.visible_class_indices()[0] == 1
    qtbot.keyClick(picker.search_field, Qt.Key.Key_Return)
    assert picker.selected_class() == 1


def test_typing_an_index_selects_that_class(picker, qtbot):
    qtbot.keyClicks(picker.search_field, "1")
    assert picker.visible_class_indices()[0] == 1
    qtbot.keyClick(picker.search_field, Qt.Key.Key_Return)
    assert picker.selected_class() == 1
    assert "goldfish" in picker.class_list.currentItem().text()


def test_auto_is_the_default_and_always_listed(picker, qtbot):
    assert picker.selected_class() is None
    assert picker.class_list.item(0).text() == AUTO_LABEL
    qtbot.keyClicks(picker.search_field, "no class is called this")
    assert picker.visible_class_indices() == []
    assert not picker.class_list.item(0).isHidden()


def test_selecting_a_hidden_class_clears_the_search(picker, qtbot):
    qtbot.keyClicks(picker.search_field, "shark")
    picker.set_selected_class(1)
    assert picker.selected_class() == 1
    assert picker.search_field.text() == ""


def test_suggestions_show_top_five_and_a_click_asks_to_rerun(picker, qtbot):
    top = ((1, 0.21), (0, 0.25), (7, 0.3), (130, 0.31), (2, 0.4), (9, 0.5))
    picker.show_suggestions(top)
    assert len(picker.suggestion_buttons) == 5
    assert "goldfish" in picker.suggestion_buttons[0].text()
    with qtbot.waitSignal(picker.rerunRequested, timeout=1000) as blocker:
        qtbot.mouseClick(picker.suggestion_buttons[2], Qt.MouseButton.LeftButton)
    assert blocker.args == [7]
    assert picker.selected_class() == 7


def test_a_subset_model_shows_and_searches_imagenet_numbers(qtbot):
    # The built-in model's labels 0, 1, 2 are ImageNet classes 1, 25, 30.
    widget = ClassPicker()
    qtbot.addWidget(widget)
    widget.set_class_names(["goldfish", "European fire salamander", "bullfrog"], [1, 25, 30])
    assert search_classes(["goldfish", "European fire salamander", "bullfrog"], "25", [1, 25, 30]) == [1]
    qtbot.keyClicks(widget.search_field, "1")
    assert widget.visible_class_indices()[0] == 0
    assert widget.class_list.item(1).text().startswith("1 \u00b7 goldfish")
