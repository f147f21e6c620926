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
    publish,
    read_run_config,
    seed_run_from_published,
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


def test_published_files_load_and_rebuild_the_run(tiny_data, tmp_path):
    run = tmp_path / "run"
    assert main(tiny_args(tiny_data, run, 2)) == 0
    model_dir, training_dir = tmp_path / "model", tmp_path / "training"
    card = publish(run, model_dir=model_dir, training_dir=training_dir, data_dir=tiny_data)
    assert card["training"]["generator_steps"] == 2
    assert [c["name"] for c in card["classes"]] == ["goldfish", "European fire salamander"]
    for entry in card["files"].values():
        assert hashlib.sha256((model_dir / entry["name"]).read_bytes()).hexdigest() == entry["sha256"]
    generator, _discriminator = load_biggan(model_dir / card["files"]["G"]["name"], model_dir / card["files"]["D"]["name"])
    assert generator.config.class_names == ("goldfish", "European fire salamander")
    assert generator.config.class_imagenet_indices == (1, 25)

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    assert seed_run_from_published(fresh, model_dir=model_dir, training_dir=training_dir)
    assert main(tiny_args(tiny_data, fresh, 3) + ["--resume"]) == 0
    from safetensors import safe_open

    with safe_open(str(fresh / RESUME_FILE), framework="pt") as handle:
        assert handle.metadata()["step"] == "3"


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
