"""The model store: imports, kinds, links, verification, removal, safety and the CLI."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch

from engine.api import load_model
from engine.biggan import BigGANConfig, Discriminator, Generator
from engine.errors import BadInputError
from engine.model_store import (
    BUILTIN_ID,
    CARD_FILE,
    ModelStore,
    find_release_pair,
    main,
    model_kind,
    released_checkpoint,
    safe_join,
)
from engine.models import save_biggan_safetensors
from tests.conftest import make_tiny_biggan

pytestmark = pytest.mark.timeout(60)

EXPECTED_KINDS = {"128": "BigGAN-128 ch96", "256": "BigGAN-256 ch96", "ch64_256": "BigGAN-256 ch64"}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_pth_pair(
    folder: Path, *, resolution: int, width: int, suffix: str, seed: int = 0
) -> tuple[Path, Path]:
    """A G/D pair saved the way the released files are: torch.save(state_dict) as .pth."""
    config = BigGANConfig(resolution=resolution, g_ch=width, d_ch=width, n_classes=4,
                          g_attention=(64,), d_attention=(64,))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator, discriminator = Generator(config), Discriminator(config)
    folder.mkdir(parents=True, exist_ok=True)
    g_path, d_path = folder / f"G_ema_{suffix}.pth", folder / f"D_{suffix}.pth"
    torch.save(generator.state_dict(), g_path)
    torch.save(discriminator.state_dict(), d_path)
    return g_path, d_path


@pytest.fixture
def tiny_files(tmp_path) -> tuple[Path, Path]:
    """The 32 px tiny pair as this project's safetensors."""
    generator, discriminator = make_tiny_biggan()
    folder = tmp_path / "downloads"
    folder.mkdir()
    g_path, d_path = folder / "G_tiny.safetensors", folder / "D_tiny.safetensors"
    save_biggan_safetensors(generator, g_path, generator.config)
    save_biggan_safetensors(discriminator, d_path, generator.config)
    return g_path, d_path


@pytest.fixture
def store(tmp_path) -> ModelStore:
    return ModelStore(tmp_path / "models", builtin_folder=tmp_path / "no-builtin")


def visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


# -- kinds ---------------------------------------------------------------------


def test_the_released_architectures_get_their_names(checkpoint_manifests):
    for suffix, expected in EXPECTED_KINDS.items():
        settings = checkpoint_manifests[suffix]["config"]
        config = BigGANConfig(
            resolution=settings["resolution"], g_ch=settings["G_ch"], d_ch=settings["D_ch"],
            n_classes=settings["n_classes"], dim_z=settings["dim_z"], shared_dim=settings["shared_dim"],
            g_attention=(int(settings["G_attn"]),), d_attention=(int(settings["D_attn"]),),
            bottom_width=settings["bottom_width"],
        )
        assert model_kind(config) == expected
        assert released_checkpoint(config) == suffix
    mixed = BigGANConfig(resolution=256, g_ch=96, d_ch=64)
    assert model_kind(mixed) == "BigGAN-256 ch96 (D ch64)" and released_checkpoint(mixed) is None
    assert released_checkpoint(BigGANConfig(resolution=128, g_ch=96, d_ch=96, n_classes=10)) is None


@pytest.mark.parametrize(("resolution", "width"), [(128, 8), (256, 4)])
def test_an_imported_pth_pair_is_named_by_its_resolution_and_width(store, tmp_path, resolution, width):
    g_path, d_path = save_pth_pair(
        tmp_path / "release", resolution=resolution, width=width, suffix=str(resolution)
    )
    model = store.import_pair(tmp_path / "release")     # a folder of released names
    assert model.kind == f"BigGAN-{resolution} ch{width}"
    assert model.card["architecture"]["resolution"] == resolution
    assert model.card["architecture"]["g_ch"] == width and model.card["architecture"]["n_classes"] == 4
    assert model.card["released_checkpoint"] is None
    assert model.has_discriminator and model.warning is None
    assert model.card["files"]["G"] == {
        "name": g_path.name, "mode": "copy", "original": str(g_path), "size": g_path.stat().st_size,
        "sha256": sha256(g_path),
    }
    assert sha256(model.g_path) == sha256(g_path) and sha256(model.d_path) == sha256(d_path)
    assert store.list().ids == [model.id]
    assert store.verify(model.id) == []
    loaded = load_model(model.g_path, model.d_path)
    assert loaded.config.resolution == resolution


def test_a_generator_without_discriminator_imports_with_a_warning(store, tiny_files):
    model = store.import_pair(tiny_files[0], name="  Tiny  ")
    assert model.name == "Tiny" and model.kind == "BigGAN-32 ch4"
    assert not model.has_discriminator and model.d_path is None
    assert "Table 4" in model.warning and "discriminator" in model.warning
    assert model.card["files"].keys() == {"G"}


def test_the_same_model_twice_is_refused(store, tiny_files):
    model = store.import_pair(*tiny_files)
    with pytest.raises(BadInputError, match=f"already imported as '{model.id}'"):
        store.import_pair(*tiny_files)


def test_a_generator_and_discriminator_that_are_not_a_pair_are_refused(store, tmp_path, tiny_files):
    _, d_128 = save_pth_pair(tmp_path / "release", resolution=128, width=8, suffix="128")
    with pytest.raises(BadInputError, match="not a pair"):
        store.import_pair(tiny_files[0], d_128)
    with pytest.raises(BadInputError, match="discriminator, not a generator"):
        store.import_pair(tiny_files[1])
    assert list(store.root.iterdir()) == []


def test_a_folder_pairs_files_by_suffix(tmp_path):
    save_pth_pair(tmp_path / "a", resolution=128, width=8, suffix="128")
    (tmp_path / "a" / "D_256.pth").write_bytes(b"x")
    expected = (tmp_path / "a" / "G_ema_128.pth", tmp_path / "a" / "D_128.pth")
    assert find_release_pair(tmp_path / "a") == expected
    (tmp_path / "a" / "G_ema_256.pth").write_bytes(b"x")
    with pytest.raises(BadInputError, match="several generators"):
        find_release_pair(tmp_path / "a")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match="no generator"):
        find_release_pair(tmp_path / "empty")


# -- atomic copies, links and verification ---------------------------------------


def test_a_copy_interrupted_before_its_rename_leaves_nothing(store, tiny_files, monkeypatch):
    real_replace = os.replace

    def replace(source, destination):
        if Path(destination).parent == store.root and not Path(destination).name.startswith("."):
            raise OSError("simulated crash before the rename")
        return real_replace(source, destination)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="simulated crash"):
        store.import_pair(*tiny_files)
    monkeypatch.undo()
    assert list(store.root.iterdir()) == []
    assert len(store.list()) == 0


def test_verify_finds_a_damaged_copy(store, tiny_files):
    model = store.import_pair(*tiny_files)
    data = bytearray(model.d_path.read_bytes())
    data[len(data) // 2] ^= 1
    model.d_path.write_bytes(bytes(data))
    problems = store.verify(model.id)
    assert len(problems) == 1 and "D file" in problems[0] and "damaged" in problems[0]
    model.g_path.unlink()
    assert any("G file" in problem and "missing" in problem for problem in store.verify(model.id))


def test_a_linked_model_reads_the_original_and_verify_sees_it_change(store, tiny_files):
    g_path, d_path = tiny_files
    model = store.import_pair(g_path, d_path, mode="link")
    assert model.card["files"]["G"]["mode"] == "link"
    assert model.g_path == g_path.resolve()
    if model.card["files"]["G"]["link"] == "symlink":
        assert (model.folder / g_path.name).is_symlink()
    assert store.verify(model.id) == []

    data = bytearray(g_path.read_bytes())
    data[-10] ^= 1                                   # same size, other content
    g_path.write_bytes(bytes(data))
    problems = store.verify(model.id)
    assert len(problems) == 1 and "target changed" in problems[0]

    store.remove(model.id)
    assert g_path.is_file() and d_path.is_file()    # removing a link never deletes the original
    assert visible(store.root) == []


def test_remove_deletes_a_copy_and_refuses_the_builtin_and_unknown_ids(store, tiny_files):
    model = store.import_pair(*tiny_files)
    with pytest.raises(BadInputError, match="built-in model cannot be removed"):
        store.remove(BUILTIN_ID)
    with pytest.raises(BadInputError, match="no imported model"):
        store.remove("biggan-32-ch4-0000000000")
    with pytest.raises(BadInputError, match="not a valid id"):
        store.remove("../models")
    store.remove(model.id)
    assert list(store.root.iterdir()) == []


def test_the_builtin_model_is_listed_first_or_reported_missing(tmp_path, tiny_files):
    store = ModelStore(tmp_path / "models", builtin_folder=tmp_path / "builtin")
    store.import_pair(*tiny_files)
    listing = store.list()
    assert [model.builtin for model in listing] == [False]
    assert "not installed" in listing.builtin_missing

    builtin = tmp_path / "builtin"
    builtin.mkdir()
    generator, discriminator = make_tiny_biggan(seed=5)
    save_biggan_safetensors(generator, builtin / "G.safetensors", generator.config)
    save_biggan_safetensors(discriminator, builtin / "D.safetensors", generator.config)
    card = {"name": "Built-in 32", "kind": "BigGAN-32 ch4", "has_discriminator": True, "files": {
        role: {"name": f"{role}.safetensors", "sha256": sha256(builtin / f"{role}.safetensors"),
               "size": (builtin / f"{role}.safetensors").stat().st_size} for role in ("G", "D")}}
    (builtin / CARD_FILE).write_text(json.dumps(card))
    listing = store.list()
    assert listing.ids[0] == BUILTIN_ID and len(listing) == 2 and listing.builtin_missing is None
    assert store.get(BUILTIN_ID).g_path == builtin / "G.safetensors"
    assert store.verify(BUILTIN_ID) == []


def test_the_shipped_builtin_location_is_read_through_resources(tmp_path):
    from engine.resources import resource_path

    listing = ModelStore(tmp_path).list()
    card = resource_path("models", "builtin-64", CARD_FILE)
    if card.is_file():
        assert listing.ids[:1] == [BUILTIN_ID]
    else:
        assert listing.ids == [] and str(card) in listing.builtin_missing


# -- safety --------------------------------------------------------------------


class _CreatesAFileWhenUnpickled:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("role", ["G", "D"])
def test_a_malicious_pickle_is_refused_without_running(store, tmp_path, tiny_files, role):
    marker = tmp_path / "pwned.txt"
    evil = tmp_path / "evil.pth"
    torch.save({"shared.weight": torch.zeros(2, 2), "payload": _CreatesAFileWhenUnpickled(marker)}, evil)
    assert not marker.exists()
    with pytest.raises(BadInputError, match="refused to load .* contains code"):
        if role == "G":
            store.import_pair(evil)
        else:
            store.import_pair(tiny_files[0], evil)
    assert not marker.exists()
    assert list(store.root.iterdir()) == []


def test_safe_join_keeps_paths_inside_the_root(tmp_path):
    root = tmp_path / "session"
    (root / "images").mkdir(parents=True)
    assert safe_join(root, "images/a.png") == (root / "images" / "a.png").resolve()
    assert safe_join(root, "images\\a.png") == (root / "images" / "a.png").resolve()
    assert safe_join(root, "./images//a.png") == (root / "images" / "a.png").resolve()
    for bad, message in [
        ("/etc/passwd", "absolute"), ("\\\\server\\share\\x", "absolute"), ("C:\\Windows\\x", "absolute"),
        ("C:x", "absolute"), ("../outside.png", "'..'"), ("images/../../x", "'..'"), ("..\\x", "'..'"),
        ("", "empty"), ("a\x00b", "NUL"), (".", "names no file"),
    ]:
        with pytest.raises(BadInputError, match=message):
            safe_join(root, bad)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "escape").symlink_to(outside, target_is_directory=True)
    with pytest.raises(BadInputError, match="symbolic link"):
        safe_join(root, "escape/secret.txt")
    (root / "inner").symlink_to(root / "images", target_is_directory=True)
    assert safe_join(root, "inner/a.png") == (root / "images" / "a.png").resolve()


# -- command line ----------------------------------------------------------------


def test_cli_imports_lists_verifies_and_removes(tmp_path, tiny_files, capsys):
    root = str(tmp_path / "models")
    assert main(["--root", root, "import", *map(str, tiny_files), "--name", "tiny"]) == 0
    model_id = capsys.readouterr().out.strip()
    assert model_id.startswith("biggan-32-ch4-")
    assert main(["--root", root, "list"]) == 0
    out = capsys.readouterr().out
    assert f"{model_id}\tBigGAN-32 ch4\tG+D\ttiny" in out
    assert main(["--root", root, "verify", model_id]) == 0
    assert main(["--root", root, "remove", model_id]) == 0
    capsys.readouterr()
    assert main(["--root", root, "import", str(tiny_files[0])]) == 0
    assert "warning: No discriminator" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["import", "missing/G.pth"], "does not exist"),
    (["remove", "builtin"], "cannot be removed"),
    (["verify", "nope"], "no imported model"),
    (["download", "https://example.org/G.pth", "--sha256", "xyz"], "not 64 hexadecimal digits"),
    (["download", "ftp://example.org/G.pth", "--sha256", "0" * 64], "only http"),
])
def test_cli_bad_input_exits_2_with_one_sentence(tmp_path, capsys, argv, message):
    assert main(["--root", str(tmp_path / "models"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_cli_needs_a_root_and_a_command(capsys):
    assert main(["list"]) == 2
    assert "--root" in capsys.readouterr().err


def test_cli_verify_reports_damage_with_status_1(tmp_path, tiny_files, capsys):
    root = tmp_path / "models"
    assert main(["--root", str(root), "import", *map(str, tiny_files)]) == 0
    model_id = capsys.readouterr().out.strip()
    stored = root / model_id / tiny_files[0].name
    data = bytearray(stored.read_bytes())
    data[-1] ^= 0xFF
    stored.write_bytes(bytes(data))
    assert main(["--root", str(root), "verify"]) == 1
    assert "damaged" in capsys.readouterr().out
