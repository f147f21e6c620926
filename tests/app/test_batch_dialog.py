"""File › Batch restore…: the dialog runs the batch in a child process and stays responsive."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from PIL import Image
from PySide6.QtCore import QTimer

from dgp_studio import batch_dialog
from dgp_studio.batch_dialog import BatchDialog, batch_command
from engine.models import save_biggan_safetensors
from tests.conftest import make_tiny_biggan


@pytest.fixture(scope="module")
def tiny_model_arguments(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    generator, discriminator = make_tiny_biggan()
    g_path, d_path = folder / "G.safetensors", folder / "D.safetensors"
    save_biggan_safetensors(generator, g_path, generator.config, dtype=torch.float32)
    save_biggan_safetensors(discriminator, d_path, generator.config, dtype=torch.float32)
    return ["--model", str(g_path), "--discriminator", str(d_path), "--device", "cpu", "--class", "3",
            "--workers", "1", "--threads", "1"]


def write_album(folder, count: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        Image.fromarray(rng.integers(0, 255, (36, 40, 3), dtype=np.uint8)).save(folder / f"p{index}.png")
    (folder / "broken.png").write_bytes(b"not a picture")


def latest_records(out) -> dict:
    latest = {}
    for line in (out / "manifest.jsonl").read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        latest[record["output"]] = record
    return latest


def photo_in_flight(out) -> bool:
    return (out / "manifest.jsonl").exists() and any(r["status"] == "started" for r in latest_records(out).values())


class TickRecorder:
    """A 20 ms QTimer on the GUI thread; the longest gap between ticks says how long the GUI froze."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.timer = QTimer()
        self.timer.setInterval(20)
        self.timer.timeout.connect(lambda: self.times.append(time.perf_counter()))
        self.timer.start()

    def longest_gap_ms(self) -> float:
        self.timer.stop()
        return max(b - a for a, b in zip(self.times, self.times[1:], strict=False)) * 1000.0


def test_the_dialog_runs_a_batch_in_a_child_process_and_the_gui_keeps_ticking(
    qtbot, tmp_path, tiny_model_arguments, monkeypatch
):
    album, out = tmp_path / "album", tmp_path / "restored"
    write_album(album, 3)
    dialog = BatchDialog(extra_arguments=["--iteration-scale", "1", *tiny_model_arguments])
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.input_field.edit.setText(str(album))
    dialog.output_field.edit.setText(str(out))
    dialog.quick_check.setChecked(True)
    assert not dialog.open_button.isEnabled()

    ticks = TickRecorder()
    with qtbot.waitSignal(dialog.finished_batch, timeout=180_000) as finished:
        dialog.start()
        assert dialog.running() and dialog.stop_button.isEnabled() and not dialog.start_button.isEnabled()
    gap = ticks.longest_gap_ms()
    assert finished.args == [2]                           # one photo was refused, the rest restored
    assert len(ticks.times) > 50
    assert gap < 500, f"the GUI stalled {gap:.0f} ms while the batch ran"
    assert sorted(p.name for p in out.glob("p*.png")) == ["p0.png", "p1.png", "p2.png"]
    assert dialog.progress.value() > 0
    assert "broken.png" in dialog.log.toPlainText()
    assert "3 restored" in dialog.status_label.text() and "1 failed" in dialog.status_label.text()
    assert dialog.open_button.isEnabled() and dialog.start_button.isEnabled()

    opened = []
    monkeypatch.setattr(batch_dialog.QDesktopServices, "openUrl", lambda url: opened.append(url.toLocalFile()))
    dialog.open_button.click()
    assert opened == [str(out)]


def test_stop_sends_ctrl_c_and_the_batch_stops_with_a_consistent_manifest(qtbot, tmp_path, tiny_model_arguments):
    album, out = tmp_path / "album", tmp_path / "restored"
    write_album(album, 4)
    dialog = BatchDialog(extra_arguments=["--iteration-scale", "3", *tiny_model_arguments])
    qtbot.addWidget(dialog)
    dialog.input_field.edit.setText(str(album))
    dialog.output_field.edit.setText(str(out))
    dialog.quick_check.setChecked(True)
    with qtbot.waitSignal(dialog.finished_batch, timeout=180_000) as finished:
        dialog.start()
        qtbot.waitUntil(lambda: dialog._done >= 1 and photo_in_flight(out), timeout=170_000)
        dialog.stop()
    assert finished.args == [130]
    assert dialog.status_label.text().startswith("Stopped")
    latest = latest_records(out)
    assert {r["status"] for r in latest.values()} <= {"done", "cancelled", "failed"}
    assert "cancelled" in {r["status"] for r in latest.values()}


def test_missing_folders_are_refused_with_a_sentence_before_anything_starts(qtbot, tmp_path, monkeypatch):
    dialog = BatchDialog()
    qtbot.addWidget(dialog)
    warnings = []
    monkeypatch.setattr(batch_dialog.QMessageBox, "warning", lambda parent, title, text: warnings.append(text))
    dialog.start()
    assert warnings == ["Choose the folder of photos to restore."] and dialog.process is None
    (tmp_path / "album").mkdir()
    dialog.input_field.edit.setText(str(tmp_path / "album"))
    dialog.output_field.edit.setText(str(tmp_path / "out"))
    dialog.task_combo.setCurrentText("Inpaint (masks folder)")
    assert dialog.masks_field.isEnabled()
    dialog.start()
    assert warnings[-1].startswith("Inpainting needs the folder of masks") and dialog.process is None


def test_the_command_is_the_engine_cli_with_json_progress(tmp_path):
    program, arguments = batch_command(["album", "-o", "out", "--task", "colorize", "--json-progress"])
    assert arguments[:4] == ["-m", "engine.cli", "batch", "album"]
    assert program.endswith(("python", "python3", "python3.11", "python.exe"))


def test_the_file_menu_opens_the_batch_dialog_once(make_window):
    window = make_window()
    assert window.batch_action.text() == "&Batch restore\u2026"
    window.batch_action.trigger()
    first = window._batch_dialog
    assert isinstance(first, BatchDialog) and first.isVisible()
    window.batch_action.trigger()
    assert window._batch_dialog is first
    first.close()
