"""Training the built-in GAN: steps run, resume continues, published files load and match the card."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from engine.models import load_biggan
from engine.resources import resource_path
from engine.train import (
    PUBLISHED_CARD,
    RESUME_FILE,
    SAMPLES_FILE,
    diff_augment,
    main,
    read_run_config,
    ship_model,
)

CLASSES = [
    {"wnid": "n01443537", "imagenet_index": 1, "name": "goldfish"},
    {"wnid": "n01629819", "imagenet_index": 25, "name": "European fire salamander"},
]


@pytest.fixture()
def tiny_data(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "classes.json").write_text(json.dumps(CLASSES))
    rng = np.random.default_rng(0)
    with tarfile.open(folder / "train-000.tar", "w") as archive:
        for index in range(8):
            wnid = CLASSES[index % 2]["wnid"]
            buffer = io.BytesIO()
            Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, format="JPEG")
            data = buffer.getvalue()
            member = tarfile.TarInfo(f"{wnid}/{wnid}_{index}.JPEG")
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return folder


def tiny_args(data, out, steps):
    return ["--data", str(data), "--out", str(out), "--resolution", "32", "--g-ch", "4", "--d-ch", "4",
            "--batch", "4", "--steps", str(steps), "--precision", "fp32"]




def test_training_runs_saves_and_resumes(tiny_data, tmp_path):
    run = tmp_path / "run"
    assert main(tiny_args(tiny_data, run, 3)) == 0
    assert read_run_config(run).g_ch == 4
    from safetensors import safe_open

    with safe_open(str(run / RESUME_FILE), framework="pt") as handle:
        assert handle.metadata()["step"] == "3"
        assert handle.get_tensor("G.linear.weight").dtype == torch.float16
    assert (run / SAMPLES_FILE).exists()
    first_weights = safe_open(str(run / RESUME_FILE), framework="pt").get_tensor("G.linear.weight").clone()

    assert main(tiny_args(tiny_data, run, 5) + ["--resume"]) == 0
    with safe_open(str(run / RESUME_FILE), framework="pt") as handle:
        assert handle.metadata()["step"] == "5"
        assert not torch.equal(handle.get_tensor("G.linear.weight"), first_weights)
    lines = (run / "log.csv").read_text().splitlines()
    assert lines[0].startswith("step,")


def test_shipped_files_load_and_match_their_card(tiny_data, tmp_path):
    run = tmp_path / "run"
    assert main(tiny_args(tiny_data, run, 2)) == 0
    model_dir = tmp_path / "model"
    card = ship_model(run, model_dir, data_dir=tiny_data)
    assert card["training"]["generator_steps"] == 2
    assert [c["name"] for c in card["classes"]] == ["goldfish", "European fire salamander"]
    assert json.loads((model_dir / PUBLISHED_CARD).read_text()) == card
    for entry in card["files"].values():
        assert hashlib.sha256((model_dir / entry["name"]).read_bytes()).hexdigest() == entry["sha256"]
    generator, _discriminator = load_biggan(model_dir / card["files"]["G"]["name"], model_dir / card["files"]["D"]["name"])
    assert generator.config.class_names == ("goldfish", "European fire salamander")
    assert generator.config.class_imagenet_indices == (1, 25)


def test_published_training_state_continues_in_a_fresh_run_without_shipping(tiny_data, tmp_path):
    from safetensors import safe_open

    run, training_dir, model_dir = tmp_path / "run", tmp_path / "training", tmp_path / "model"
    assert main(tiny_args(tiny_data, run, 2)) == 0
    assert main(["--out", str(run), "--publish", str(training_dir)]) == 0
    assert sorted(p.name for p in training_dir.iterdir()) == sorted([RESUME_FILE, SAMPLES_FILE, "log.csv"])
    assert not model_dir.exists()  # publishing the training state ships nothing

    fresh = tmp_path / "fresh"
    assert main(tiny_args(tiny_data, fresh, 3) + ["--resume", "--seed-from", str(training_dir)]) == 0
    with safe_open(str(fresh / RESUME_FILE), framework="pt") as handle:
        assert handle.metadata()["step"] == "3"
    assert (fresh / "log.csv").read_text().startswith((training_dir / "log.csv").read_text())

    assert main(["--out", str(fresh), "--publish", str(training_dir), "--model-dir", str(model_dir)]) == 0
    card = json.loads((model_dir / PUBLISHED_CARD).read_text())
    assert card["training"]["generator_steps"] == 3


def test_seeding_from_a_folder_without_state_is_one_sentence(tiny_data, tmp_path, capsys):
    empty = tmp_path / "no-state"
    empty.mkdir()
    assert main(tiny_args(tiny_data, tmp_path / "run", 2) + ["--resume", "--seed-from", str(empty)]) == 2
    error = capsys.readouterr().err.strip()
    assert error == f"dgp-studio train: {empty} holds no {RESUME_FILE} to continue from."
    assert not (tmp_path / "run" / RESUME_FILE).exists()


def test_bad_data_folder_is_one_sentence(tmp_path, capsys):
    assert main(["--data", str(tmp_path), "--out", str(tmp_path / "run"), "--steps", "1"]) == 2
    assert "classes.json" in capsys.readouterr().err


def test_diffaugment_is_differentiable_and_shape_preserving():
    x = torch.rand(4, 3, 16, 16, requires_grad=True)
    out = diff_augment(x, "color,translation,cutout", torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    out.sum().backward()
    assert x.grad is not None and torch.count_nonzero(x.grad) > 0


def test_the_shipped_model_matches_its_card():
    folder = resource_path("models", "builtin-64")
    card_path = folder / PUBLISHED_CARD
    if not card_path.exists():
        pytest.skip("the built-in model has not been shipped in this checkout")
    card = json.loads(card_path.read_text())
    for entry in card["files"].values():
        assert hashlib.sha256((folder / entry["name"]).read_bytes()).hexdigest() == entry["sha256"]
    generator, _discriminator = load_biggan(folder / card["files"]["G"]["name"], folder / card["files"]["D"]["name"])
    assert generator.config.resolution == card["architecture"]["resolution"]
    assert len(card["classes"]) == generator.config.n_classes
    with torch.no_grad():
        images = generator(torch.zeros(1, generator.dim_z), torch.tensor([0]))
    assert images.shape == (1, 3, 64, 64) and torch.isfinite(images).all()
