"""The welcome panel and its sample photos: shown at start, one click opens a sample and restores it."""

from __future__ import annotations

import fnmatch
import threading
import tomllib
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from dgp_studio.welcome import (
    SAMPLES_FILE_NAME,
    SAMPLES_FOLDER,
    WelcomePanel,
    class_index_for,
    load_samples,
    read_sample,
)
from engine.errors import BadInputError
from engine.plan import TILE_OVERLAP
from engine.superres import tile_grid

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


def sample_card(window, task: str):
    """The welcome panel's first card whose sample runs ``task``."""
    return next(card for card in window.welcome_panel.sample_cards if card.sample.task == task)


def test_the_welcome_panel_stands_where_the_photo_goes_until_one_is_open(make_window, photo):
    window = make_window(wait_for_model=False)
    assert window.welcome_panel.isVisible()
    assert not window.canvas.isVisible()
    # Nothing to compare and no results yet: the slider and the results strip wait for a photo.
    assert not window.split_slider.isVisible() and not window.history.isVisible()
    assert len(window.welcome_panel.sample_cards) == len(load_samples())
    window.set_photo(photo)
    assert not window.welcome_panel.isVisible()
    assert window.canvas.isVisible()
    assert window.split_slider.isVisible() and window.history.isVisible()


def test_every_sample_decodes_and_its_mask_fits(qapp):
    samples = load_samples()
    assert len(samples) >= 4
    assert {sample.task for sample in samples} == {"colorize", "inpaint", "sr"}
    for sample in samples:
        rgb, mask = read_sample(sample)
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
        assert max(rgb.shape[:2]) <= 512, sample.path.name
        if sample.task == "inpaint":
            assert mask is not None and mask.shape == rgb.shape[:2]
            assert 0 < int(mask.sum()) < mask.size // 4  # a region to fill, not the whole photo
        else:
            assert mask is None
        if sample.task == "sr":
            # A small photo to enlarge: its whole-photo plan with the built-in 64 px model
            # stays a few minutes of quick mode (at most 64 tiles), not an hour.
            tiles = tile_grid((rgb.shape[1], rgb.shape[0]), sample.sr_factor, 64, TILE_OVERLAP).tiles
            assert len(tiles) <= 64, (sample.path.name, len(tiles))
    total = sum(path.stat().st_size for path in SAMPLES_FOLDER.iterdir() if path.is_file())
    assert total < 600 * 1024


def test_every_shipped_photo_has_its_author_and_licence_in_the_sample_list():
    listed = tomllib.loads((SAMPLES_FOLDER / SAMPLES_FILE_NAME).read_text(encoding="utf-8"))["sample"]
    by_file = {entry["file"]: entry for entry in listed}
    masks = {entry["mask"] for entry in listed if "mask" in entry}
    photos = {
        path.name
        for path in SAMPLES_FOLDER.iterdir()
        if path.suffix.lower() in SAMPLE_IMAGE_SUFFIXES and path.name not in masks
    }
    assert photos == set(by_file)
    credits = (SAMPLES_FOLDER / "LICENSES.md").read_text(encoding="utf-8")
    for name, entry in by_file.items():
        for key in ("author", "licence", "source"):
            assert entry[key].strip(), f"{name} has no {key}"
        assert name in credits and entry["author"] in credits
    for mask in masks:
        assert mask in credits


def test_the_samples_are_package_data_and_in_the_bundle():
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["dgp_studio"]
    shipped = [path for path in SAMPLES_FOLDER.iterdir() if path.is_file()]
    for path in shipped:
        relative = path.relative_to(SAMPLES_FOLDER.parent).as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative
    spec = (REPO_ROOT / "packaging" / "dgp-studio.spec").read_text(encoding="utf-8")
    assert '"dgp_studio" / "samples"' in spec


def test_a_broken_sample_list_is_named_in_one_sentence(tmp_path):
    (tmp_path / "cat.jpg").write_bytes(b"")
    (tmp_path / SAMPLES_FILE_NAME).write_text(
        '[[sample]]\nfile = "cat.jpg"\ntitle = "Cat"\ntask = "colorize"\nauthor = "Someone"\n'
        'source = "here"\n',
        encoding="utf-8",
    )
    with pytest.raises(BadInputError, match=r"samples\.toml.*sample 1 has no licence"):
        load_samples(tmp_path)
    (tmp_path / SAMPLES_FILE_NAME).write_text(
        '[[sample]]\nfile = "cat.jpg"\ntitle = "Cat"\ntask = "inpaint"\nauthor = "Someone"\n'
        'licence = "CC0"\nsource = "here"\n',
        encoding="utf-8",
    )
    with pytest.raises(BadInputError, match="inpainting sample without a mask"):
        load_samples(tmp_path)


def test_the_panel_shows_the_problem_instead_of_cards_when_the_list_is_broken(qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr("dgp_studio.welcome.load_samples", lambda: load_samples(tmp_path))
    panel = WelcomePanel()
    qtbot.addWidget(panel)
    assert panel.sample_cards == []
    assert SAMPLES_FILE_NAME in panel.problem_label.text()


def test_class_names_match_without_regard_to_case():
    names = ["goldfish", "tabby", "Persian cat"]
    assert class_index_for(names, "Tabby") == 1
    assert class_index_for(names, "persian cat") == 2
    assert class_index_for(names, "projectile") is None
    assert class_index_for(names, None) is None


def test_the_cards_wrap_onto_more_rows_when_the_panel_is_narrow(qtbot):
    panel = WelcomePanel()
    qtbot.addWidget(panel)
    panel.show()
    panel.resize(1000, 600)
    assert panel.card_columns() == len(panel.sample_cards)
    panel.resize(420, 600)
    assert panel.card_columns() == 1


def test_open_photo_asks_for_a_file(make_window, qtbot, tmp_path, photo, monkeypatch):
    from PIL import Image

    path = tmp_path / "mine.png"
    Image.fromarray(photo).save(path)
    window = make_window(wait_for_model=False)
    monkeypatch.setattr(
        "dgp_studio.main_window.QFileDialog.getOpenFileName", lambda *args, **kwargs: (str(path), "")
    )
    with qtbot.waitSignal(window.photoOpened, timeout=60_000):
        qtbot.mouseClick(window.welcome_panel.open_button, Qt.MouseButton.LeftButton)
    assert not window.welcome_panel.isVisible()


def test_a_photo_dropped_on_the_welcome_panel_opens(make_window, qtbot, tmp_path, photo):
    from PIL import Image

    path = tmp_path / "dropped.png"
    Image.fromarray(photo).save(path)
    window = make_window(wait_for_model=False)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    target = window.welcome_panel.sample_cards[0]
    position = QPointF(target.width() / 2, target.height() / 2)
    buttons, modifiers = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(position.toPoint(), Qt.DropAction.CopyAction, mime, buttons, modifiers)
    QApplication.sendEvent(target, enter)
    assert enter.isAccepted()
    drop = QDropEvent(position, Qt.DropAction.CopyAction, mime, buttons, modifiers)
    with qtbot.waitSignal(window.photoOpened, timeout=60_000) as opened:
        QApplication.sendEvent(target, drop)
    assert opened.args == ["dropped.png"]
    assert not window.welcome_panel.isVisible()


def test_clicking_the_inpainting_sample_opens_it_with_its_mask_and_runs_a_quick_restore(make_window, qtbot):
    window = make_window()
    card = sample_card(window, "inpaint")
    expected_rgb, expected_mask = read_sample(card.sample)
    with qtbot.waitSignal(window.runEnded, timeout=180_000):
        qtbot.mouseClick(card, Qt.MouseButton.LeftButton)
    assert not window.error_dialogs
    np.testing.assert_array_equal(window.photo(), expected_rgb)
    [entry] = window.history.entries()
    assert entry.task == "inpaint" and entry.job.quick and not entry.cancelled
    np.testing.assert_array_equal(entry.job.mask, expected_mask)
    assert entry.source_path is None  # never suggested to be saved over the app's own files
    assert not window.welcome_panel.isVisible() and window.canvas.isVisible()
    assert str(card.sample.path) not in window.recent_files()


def test_a_sample_clicked_while_the_model_loads_runs_once_it_is_ready(
    make_window, qtbot, tiny_engine_factory
):
    model_may_load = threading.Event()

    def slow_factory(settings):
        model_may_load.wait(60)
        return tiny_engine_factory(settings)

    window = make_window(engine_factory=slow_factory, wait_for_model=False)
    try:
        card = sample_card(window, "colorize")  # one model run: whole-photo SR is many tiles
        with qtbot.waitSignal(window.photoOpened, timeout=60_000):
            qtbot.mouseClick(card, Qt.MouseButton.LeftButton)
        assert window.model_info() is None and not window.is_running()
        assert window.task_panel.task() == "colorize"
        with qtbot.waitSignal(window.runEnded, timeout=180_000):
            model_may_load.set()
    finally:
        model_may_load.set()
    [entry] = window.history.entries()
    assert entry.task == "colorize" and entry.job.quick
    # The tiny model has no class of that name: the prior chooses.
    assert entry.job.class_index is None
