"""Model files are checked against model.json on every load; the model store, downloads and states
fail in one sentence on full disks and bad cards; messages name the file they are about."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import engine.api
import engine.checksums
from engine.api import builtin_model_folder, load_model
from engine.cli import main
from engine.errors import BadInputError
from engine.model_store import ModelStore
from engine.models import save_biggan_safetensors
from engine.state import GeneratorState
from tests.conftest import REPO_ROOT, make_tiny_biggan


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    generator, discriminator = make_tiny_biggan()
    g_path, d_path = folder / "G_tiny.safetensors", folder / "D_tiny.safetensors"
    save_biggan_safetensors(generator, g_path, generator.config, dtype=torch.float32)
    save_biggan_safetensors(discriminator, d_path, generator.config, dtype=torch.float32)
    return g_path, d_path


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-100] ^= 1                                   # inside a weight: the file still loads
    path.write_bytes(bytes(data))


def test_the_builtin_model_is_checked_against_its_card(tmp_path, monkeypatch):
    copy = tmp_path / "builtin-64"
    shutil.copytree(builtin_model_folder(), copy)
    monkeypatch.setattr(engine.api, "builtin_model_folder", lambda: copy)
    assert load_model("builtin").G is not None
    card = json.loads((copy / "model.json").read_text())
    _flip_a_byte(copy / card["files"]["G"]["name"])
    with pytest.raises(BadInputError, match="G_ema.safetensors does not match the SHA-256"):
        load_model("builtin")


def test_a_stored_model_with_a_flipped_byte_is_refused_on_load(tmp_path, tiny_files):
    store = ModelStore(tmp_path / "models", builtin_folder=tmp_path / "none")
    model = store.import_pair(*tiny_files)
    assert load_model(model.g_path, model.d_path).D is not None
    _flip_a_byte(model.g_path)
    with pytest.raises(BadInputError, match="does not match the SHA-256"):
        load_model(model.g_path, model.d_path)
    with pytest.raises(BadInputError, match="does not match the SHA-256"):
        load_model(model.folder)


def test_each_unchanged_file_is_hashed_once_per_process(tmp_path, tiny_files, monkeypatch):
    store = ModelStore(tmp_path / "models", builtin_folder=tmp_path / "none")
    model = store.import_pair(*tiny_files)
    hashed: list[Path] = []
    real = engine.checksums.sha256_file

    def counting(path, **options):
        hashed.append(Path(path))
        return real(path, **options)

    monkeypatch.setattr(engine.checksums, "sha256_file", counting)
    load_model(model.g_path, model.d_path)
    first = [p for p in hashed if p.parent == model.folder]
    load_model(model.g_path, model.d_path)
    assert len([p for p in hashed if p.parent == model.folder]) == len(first) == 2


def _models(*args: str):
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", "engine.cli", "models", *args], check=False, capture_output=True,
                          text=True, timeout=120, env=environment, cwd=REPO_ROOT)


@pytest.mark.parametrize("field, value", [("size", "big"), ("sha256", 12), ("files", [1, 2]), ("G", "text")])
def test_models_verify_with_wrong_types_reports_a_problem_not_a_traceback(field, value, tmp_path, tiny_files):
    store = ModelStore(tmp_path / "models", builtin_folder=tmp_path / "none")
    model = store.import_pair(*tiny_files)
    card_path = model.folder / "model.json"
    card = json.loads(card_path.read_text())
    if field == "files":
        card["files"] = value
    elif field == "G":
        card["files"]["G"] = value
    else:
        card["files"]["G"][field] = value
    card_path.write_text(json.dumps(card))
    completed = _models("--root", str(store.root), "verify", model.id)
    assert "Traceback" not in completed.stderr, completed.stderr
    assert completed.returncode in (1, 2), completed.stderr
    assert model.id in completed.stdout + completed.stderr


def test_models_help_does_not_call_root_required():
    completed = _models("--help")
    assert completed.returncode == 0
    assert "[--root DIR]" in completed.stdout


@pytest.fixture()
def small_disk(tmp_path):
    """A 256 KiB tmpfs (root only); skipped where it cannot be mounted."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)],
                             check=False, capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("a small tmpfs cannot be mounted here (needs root)")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False, capture_output=True)


def test_model_import_on_a_full_disk_is_one_sentence_and_leaves_nothing(small_disk, tmp_path):
    g_path, d_path = tmp_path / "G_big.safetensors", tmp_path / "D_big.safetensors"
    generator, discriminator = make_tiny_biggan()
    save_biggan_safetensors(generator, g_path, generator.config, dtype=torch.float32)
    save_biggan_safetensors(discriminator, d_path, generator.config, dtype=torch.float32)
    with open(g_path, "ab") as padding:   # trailing bytes are never read, but they are copied
        padding.write(bytes(512 << 10))
    completed = _models("--root", str(small_disk / "models"), "import", str(g_path), str(d_path))
    assert completed.returncode == 2, completed.stderr
    assert "Traceback" not in completed.stderr
    assert len(completed.stderr.strip().splitlines()) == 1
    leftovers = [p for p in (small_disk / "models").rglob("*") if p.is_file()]
    assert leftovers == []


class _Payload(BaseHTTPRequestHandler):
    body = bytes(range(256)) * 4096         # 1 MiB

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


def test_a_download_onto_a_full_disk_deletes_its_partial_file(small_disk):
    from engine.download import download

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Payload)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/G.pth"
        with pytest.raises(BadInputError, match=r"G\.pth cannot be written \(the disk is full\)"):
            for _progress in download(url, small_disk / "G.pth", expected_sha256=None, chunk_bytes=64 << 10):
                pass
    finally:
        server.shutdown()
        server.server_close()
    assert list(small_disk.iterdir()) == []


def test_a_state_saved_on_a_full_disk_leaves_nothing(small_disk):
    state = GeneratorState(model_identity="m", weight_delta={"w": torch.zeros(256, 1024)},
                           z=torch.zeros(1, 8), class_index=1, class_embedding=torch.zeros(1, 4))
    with pytest.raises(BadInputError, match="disk is full"):
        state.save(small_disk / "s.dgpstate")
    assert list(small_disk.iterdir()) == []


def test_two_writers_saving_a_state_to_one_path_do_not_collide(tmp_path):
    path = tmp_path / "s.dgpstate"
    failures: list[BaseException] = []

    def save_many(mark: int) -> None:
        state = GeneratorState(model_identity="m", weight_delta={"w": torch.full((64, 64), float(mark))},
                               z=torch.zeros(1, 8), class_index=mark, class_embedding=torch.zeros(1, 4))
        for _ in range(25):
            try:
                state.save(path)
            except BaseException as error:  # noqa: BLE001 - collected for the assertion
                failures.append(error)

    threads = [threading.Thread(target=save_many, args=(mark,)) for mark in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert GeneratorState.load(path).class_index in (1, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.dgpstate"]


# --------------------------------------------------------------------------------------
# Messages that name their file


@pytest.fixture()
def photo(tmp_path) -> Path:
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(path)
    return path


def _model_args(files) -> list[str]:
    return ["--model", str(files[0]), "--discriminator", str(files[1]), "--device", "cpu"]


def test_an_all_white_mask_is_named(photo, tmp_path, tiny_files, capsys):
    mask = tmp_path / "white.png"
    Image.fromarray(np.full((24, 24), 255, np.uint8)).save(mask)
    code = main(["restore", str(photo), "--task", "inpaint", "--mask", str(mask), "--quick", "-o",
                 str(tmp_path / "o.png"), *_model_args(tiny_files)])
    assert code == 2
    assert str(mask) in capsys.readouterr().err


def test_a_mask_with_a_task_that_ignores_it_is_named(photo, tmp_path, capsys):
    mask = tmp_path / "hole.png"
    Image.fromarray(np.full((24, 24), 255, np.uint8)).save(mask)
    code = main(["restore", str(photo), "--task", "colorize", "--mask", str(mask), "-o", str(tmp_path / "o.png")])
    assert code == 2
    err = capsys.readouterr().err
    assert str(mask) in err and "inpaint and hybrid" in err


def test_a_state_of_another_model_is_named(tmp_path, tiny_files, capsys):
    state_path = tmp_path / "other.dgpstate"
    GeneratorState(model_identity="some-other-model", weight_delta={}, z=torch.zeros(1, 120), class_index=1,
                   class_embedding=torch.zeros(1, 128)).save(state_path)
    code = main(["jitter", str(state_path), "--count", "2", "-o", str(tmp_path / "o.png"), *_model_args(tiny_files)])
    assert code == 2
    err = capsys.readouterr().err
    assert str(state_path) in err and "some-other-model" in err
