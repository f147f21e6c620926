"""Fixtures for the desktop app's tests (pytest-qt, offscreen).

Every test gets its own settings folder and ``QSettings`` location under
``tmp_path`` (nothing touches the real user's configuration), and fails if it
leaves an engine thread running.
"""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from dgp_studio.app_logging import LOG_DIR_VARIABLE
from dgp_studio.settings import CACHE_DIR_VARIABLE, CONFIG_DIR_VARIABLE, DATA_DIR_VARIABLE
from dgp_studio.worker import running_engine_threads


@pytest.fixture(autouse=True)
def isolated_user_folders(tmp_path, monkeypatch):
    """Redirect the TOML settings folder, the result cache, the model store, logs and QSettings into tmp_path."""
    config = tmp_path / "config"
    monkeypatch.setenv(CONFIG_DIR_VARIABLE, str(config))
    monkeypatch.setenv(CACHE_DIR_VARIABLE, str(tmp_path / "cache"))
    monkeypatch.setenv(DATA_DIR_VARIABLE, str(tmp_path / "data"))
    monkeypatch.setenv(LOG_DIR_VARIABLE, str(tmp_path / "logs"))
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "qsettings"))
    return config


@pytest.fixture(autouse=True)
def close_prompt_discards(monkeypatch):
    """Answer the window's Save / Discard / Cancel prompt with Discard (pytest-qt closes every window
    after a test, and a modal box would wait for a click); tests of the prompt replace this answer.
    Returns the sentences asked."""
    from dgp_studio import main_window

    asked: list[str] = []

    def discard(parent, sentence, *, can_save):
        asked.append(sentence)
        return main_window.CLOSE_DISCARD

    monkeypatch.setattr(main_window, "ask_before_closing", discard)
    return asked


@pytest.fixture(autouse=True)
def no_engine_thread_left(qapp):
    """Fail a test that leaves an engine thread running."""
    yield
    leftover = running_engine_threads()
    for thread in leftover:  # do not let one test's thread poison the next
        thread.quit()
        thread.wait(10_000)
    assert not leftover, f"{len(leftover)} engine thread(s) still running after the test"


@pytest.fixture
def tiny_engine_factory(tiny_biggan):
    """``settings -> Engine`` over the random 32 px BigGAN, on CPU in fp32 with one thread."""

    def factory(settings):
        from engine.api import Engine, load_model

        return Engine(load_model(tiny_biggan), device="cpu", precision="fp32", threads=None)

    return factory


@pytest.fixture
def fast_engine_factory(tiny_biggan):
    """The tiny model with one torch thread: on a small CPU, more threads only contend."""
    import torch

    previous = torch.get_num_threads()

    def factory(settings):
        from engine.api import Engine, load_model

        return Engine(load_model(tiny_biggan), device="cpu", precision="fp32", threads=1)

    yield factory
    torch.set_num_threads(previous)


@pytest.fixture
def photo() -> np.ndarray:
    """A 48 × 64 RGB test photo (smooth gradients, so resizing is well behaved)."""
    rows = np.linspace(0, 255, 48, dtype=np.float32)[:, None]
    cols = np.linspace(0, 255, 64, dtype=np.float32)[None, :]
    red = np.broadcast_to(cols, (48, 64))
    green = np.broadcast_to(rows, (48, 64))
    blue = (red + green) / 2
    return np.stack([red, green, blue], axis=-1).astype(np.uint8)


@pytest.fixture
def make_window(qtbot, tiny_engine_factory):
    """Build shown main windows over the tiny model; they are shut down after the test."""
    from dgp_studio.main_window import MainWindow
    from dgp_studio.settings import AppSettings

    windows = []

    def build(*, engine_factory=None, wait_for_model: bool = True):
        window = MainWindow(
            app_settings=AppSettings(device="cpu", precision="fp32"),
            engine_factory=engine_factory or tiny_engine_factory,
        )
        qtbot.addWidget(window)
        windows.append(window)
        window.resize(1100, 760)
        if wait_for_model:
            with qtbot.waitSignal(window.modelReady, timeout=60_000):
                window.show()
        else:
            window.show()
        qtbot.waitExposed(window)
        return window

    yield build
    for window in windows:
        assert window.shutdown(timeout_ms=30_000), "the engine thread did not stop"
