"""Tools > Model manager over a store in tmp_path: import a tiny pair, warn without D, remove, use."""

from __future__ import annotations

import pytest

from dgp_studio.model_manager import ModelManagerDialog
from dgp_studio.settings import AppSettings, models_dir
from engine.model_store import NO_DISCRIMINATOR_WARNING, ModelStore
from tests.conftest import make_tiny_biggan


@pytest.fixture
def tiny_files(tmp_path):
    from engine.models import save_biggan_safetensors

    generator, discriminator = make_tiny_biggan()
    folder = tmp_path / "downloads"
    folder.mkdir()
    save_biggan_safetensors(generator, folder / "tiny_G.safetensors", generator.config)
    save_biggan_safetensors(discriminator, folder / "tiny_D.safetensors", discriminator.config)
    return folder / "tiny_G.safetensors", folder / "tiny_D.safetensors"


@pytest.fixture
def manager(qtbot, tmp_path):
    store = ModelStore(models_dir(), builtin_folder=tmp_path / "no-builtin")
    dialog = ModelManagerDialog(store)
    qtbot.addWidget(dialog)
    yield dialog
    assert dialog.wait_for_imports()


def import_and_wait(qtbot, dialog, g_path, d_path=None, *, mode="copy"):
    with qtbot.waitSignal(dialog.importFinished, timeout=60_000) as finished:
        dialog.start_import(g_path, d_path, mode=mode)
    return finished.args[0]


def test_the_store_lives_in_the_redirected_data_folder(tmp_path):
    assert models_dir() == tmp_path / "data" / "models"


def test_an_imported_pair_is_listed_verified_used_and_removed(qtbot, manager, tiny_files):
    assert manager.model_ids() == []
    model = import_and_wait(qtbot, manager, *tiny_files)
    assert model is not None and model.has_discriminator
    assert manager.model_ids() == [model.id]
    assert manager.selected_model().id == model.id
    details = manager.details_label.text()
    assert "Classes: 10" in details and "tiny_G.safetensors" in details and "tiny_D.safetensors" in details
    assert "Warning" not in details
    assert manager.verify_selected() == [] and "every file matches" in manager.status_label.text()

    # The second import of the same files is refused with one sentence, not a crash.
    assert import_and_wait(qtbot, manager, *tiny_files) is None
    assert "already imported" in manager.status_label.text()

    with qtbot.waitSignal(manager.modelChosen) as chosen:
        manager.use_button.click()
    assert chosen.args == [model.id]
    assert AppSettings(model=model.id).validated().model == model.id  # settings accept a store id
    assert not manager.remove_selected()  # the model in use stays
    assert "in use" in manager.status_label.text()


def test_remove_deletes_an_imported_model_that_is_not_in_use(qtbot, manager, tiny_files):
    model = import_and_wait(qtbot, manager, *tiny_files, mode="link")
    assert manager.remove_selected()
    assert manager.model_ids() == [] and not (models_dir() / model.id).exists()
    assert tiny_files[0].is_file()  # a linked original is never deleted


def test_a_generator_without_discriminator_shows_the_warning_and_cannot_be_used(qtbot, manager, tiny_files):
    model = import_and_wait(qtbot, manager, tiny_files[0])
    assert model is not None and not model.has_discriminator
    assert NO_DISCRIMINATOR_WARNING in manager.status_label.text()
    assert "no D" in manager.model_list.currentItem().text()
    assert "Warning: No discriminator was imported" in manager.details_label.text()
    with qtbot.assertNotEmitted(manager.modelChosen):
        manager.use_selected()
    assert "has no discriminator" in manager.status_label.text()


def test_using_an_imported_model_reloads_the_app_with_it(make_window, qtbot, tiny_files):
    seen = []

    def factory(settings):
        from engine.api import Engine, load_model

        seen.append(settings.model)
        if settings.model == "builtin":
            return Engine(load_model(make_tiny_biggan()), device="cpu", precision="fp32")
        stored = ModelStore(models_dir()).get(settings.model)
        return Engine(load_model(stored.g_path, stored.d_path), device="cpu", precision="fp32")

    window = make_window(engine_factory=factory)
    dialog = window.model_manager()
    qtbot.addWidget(dialog)
    model = import_and_wait(qtbot, dialog, *tiny_files)
    with qtbot.waitSignal(window.modelReady, timeout=60_000):
        dialog.use_selected()
    assert window.app_settings().model == model.id
    assert seen[-1] == model.id
    assert window.model_info() is not None
    assert window.model_info().display_name in window.status_model_label.text()


def test_the_status_bar_names_the_model_and_its_link_opens_the_manager(make_window, monkeypatch):
    window = make_window()
    text = window.status_model_label.text()
    assert 'href="model-manager"' in text and window.model_info().display_name in text
    # The task panel lists the model's presets by title, the default named.
    info = window.model_info()
    names = info.presets[window.task_panel.task()]
    assert names and window.task_panel.preset_combo.itemText(0).endswith(info.preset_titles[names[0]])
    opened = []
    monkeypatch.setattr(window, "open_model_manager", lambda: opened.append(True))
    window.status_model_label.linkActivated.emit("model-manager")
    assert opened == [True]


def test_the_default_engine_factory_loads_a_store_model_and_refuses_one_without_d(
    qtbot, manager, tiny_files
):
    from dgp_studio.worker import default_engine_factory
    from engine.errors import BadInputError

    pair = import_and_wait(qtbot, manager, *tiny_files)
    engine = default_engine_factory(AppSettings(device="cpu", precision="fp32", model=pair.id))
    assert engine.resolution == 32 and engine.G.config.n_classes == 10
    manager.remove_selected()
    generator_only = import_and_wait(qtbot, manager, tiny_files[0])
    with pytest.raises(BadInputError, match="no discriminator"):
        default_engine_factory(AppSettings(device="cpu", precision="fp32", model=generator_only.id))
