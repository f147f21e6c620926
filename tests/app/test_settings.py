"""Preferences in TOML under the (redirected) config folder, and the Settings dialog."""

from __future__ import annotations

import tomllib

import pytest

from dgp_studio import settings as settings_module
from dgp_studio.settings import AppSettings, SettingsDialog, load_settings, save_settings, settings_path
from engine.errors import BadInputError


def test_settings_live_in_the_redirected_folder_and_round_trip(isolated_user_folders):
    assert settings_path().parent == isolated_user_folders
    assert load_settings() == AppSettings()  # no file yet: defaults
    chosen = AppSettings(device="cpu", precision="bf16", threads=3)
    written = save_settings(chosen)
    assert written == isolated_user_folders / "settings.toml"
    data = tomllib.loads(written.read_text(encoding="utf-8"))
    assert data["schema"] == 1 and data["precision"] == "bf16" and data["threads"] == 3
    assert load_settings() == chosen
    assert not list(isolated_user_folders.glob(".*.tmp"))  # the temporary file was renamed away


def test_without_the_override_the_platformdirs_folder_is_used(monkeypatch, tmp_path):
    monkeypatch.delenv(settings_module.CONFIG_DIR_VARIABLE)
    seen = {}

    def fake_user_config_dir(appname, *args, **kwargs):
        seen["appname"] = appname
        return str(tmp_path / "platform")

    monkeypatch.setattr(settings_module.platformdirs, "user_config_dir", fake_user_config_dir)
    assert settings_path() == tmp_path / "platform" / "settings.toml"
    assert seen["appname"] == "dgp-studio"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('device = "tpu"\n', "device = 'tpu'"),
        ("threads = -2\n", "threads = -2"),
        ('colour = "blue"\n', "unknown key 'colour'"),
        ("device = \n", "not valid TOML"),
        ('model = "custom"\n', "generator_path"),
    ],
)
def test_bad_settings_files_are_refused_with_one_sentence(isolated_user_folders, text, message):
    isolated_user_folders.mkdir(parents=True, exist_ok=True)
    (isolated_user_folders / "settings.toml").write_text(text, encoding="utf-8")
    with pytest.raises(BadInputError, match=message):
        load_settings()


def test_dialog_shows_and_returns_the_settings(qtbot):
    original = AppSettings(device="cuda", precision="fp32", threads=4)
    dialog = SettingsDialog(original)
    qtbot.addWidget(dialog)
    assert dialog.settings() == original
    dialog.device_combo.setCurrentIndex(dialog.device_combo.findData("mps"))
    dialog.threads_spin.setValue(0)
    assert dialog.settings() == AppSettings(device="mps", precision="fp32", threads=0)


def test_dialog_refuses_a_custom_model_without_files(qtbot):
    dialog = SettingsDialog(AppSettings())
    qtbot.addWidget(dialog)
    dialog.model_combo.setCurrentIndex(dialog.model_combo.findData("custom"))
    dialog.buttons.accepted.emit()
    assert "generator_path" in dialog.problem_label.text()
    assert dialog.result() == 0
