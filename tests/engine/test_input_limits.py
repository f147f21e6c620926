"""Inputs are only read when they are regular files of a bounded size, photos up to a documented
megapixel limit, session members streamed with a running cap, state files checked field by field."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.errors import BadInputError
from engine.imageio import DEFAULT_MAX_MEGAPIXELS, load_image, max_megapixels
from engine.session import Session, TaskSettings, load_session, save_session, session_image
from tests.conftest import REPO_ROOT, refused_quickly


def run_cli(*args: str, env: dict | None = None, timeout: float = 30.0):
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})}
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", "engine.cli", *args], check=False, capture_output=True, text=True,
        timeout=timeout, env=environment, cwd=REPO_ROOT,
    )
    return completed, time.perf_counter() - started


def _one_sentence(completed, fragment: str) -> None:
    assert completed.returncode == 2, completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in completed.stderr, completed.stderr
    assert fragment in lines[0], lines[0]


@pytest.fixture()
def photo(tmp_path) -> Path:
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "folder"])
def test_special_files_are_refused_within_a_second(kind, tmp_path):
    if kind == "dev-zero":
        source = Path("/dev/zero")
        if not source.exists():
            pytest.skip("no /dev/zero here")
        fragment = "not a regular file"
    elif kind == "fifo":
        if not hasattr(os, "mkfifo"):
            pytest.skip("no FIFOs here")
        source = tmp_path / "pipe.png"
        os.mkfifo(source)          # nobody ever writes: opening it for reading would wait for ever
        fragment = "not a regular file"
    else:
        source = tmp_path / "album.png"
        source.mkdir()
        fragment = "is a folder"
    completed, seconds = run_cli("restore", str(source), "--task", "colorize", "-o", str(tmp_path / "o.png"),
                                 timeout=10)
    _one_sentence(completed, fragment)
    assert refused_quickly(seconds)


def test_a_fifo_as_the_mask_or_the_state_is_refused_without_opening_it(photo, tmp_path):
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    completed, _ = run_cli("restore", str(photo), "--task", "inpaint", "--mask", str(pipe), "-o",
                           str(tmp_path / "o.png"), timeout=10)
    _one_sentence(completed, "not a regular file")
    completed, _ = run_cli("jitter", str(pipe), "-o", str(tmp_path / "o.png"), timeout=10)
    _one_sentence(completed, "not a regular file")
    with pytest.raises(BadInputError, match="not a regular file"):
        load_image(pipe)
    with pytest.raises(BadInputError, match="not a regular file"):
        load_session(pipe)


def test_a_symlink_loop_is_named_as_one(tmp_path):
    loop = tmp_path / "loop.png"
    loop.symlink_to(loop)
    with pytest.raises(BadInputError, match="symbolic link loop"):
        load_image(loop)


def test_the_megapixel_limit_is_150_and_not_pillows(photo, monkeypatch):
    # Pillow's own decompression-bomb limit (89.5 MP) refused a 108 MP camera photo; ours is
    # 150 MP. Shrinking Pillow's limit below this photo shows it no longer decides.
    assert DEFAULT_MAX_MEGAPIXELS == 150 and max_megapixels() == 150
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    assert load_image(photo).size == (24, 20)


def test_a_photo_over_the_limit_names_the_limit_and_the_setting(photo, tmp_path):
    completed, _ = run_cli("restore", str(photo), "--task", "colorize", "-o", str(tmp_path / "o.png"),
                           "--model", str(tmp_path / "G.pth"), "--discriminator", str(tmp_path / "D.pth"),
                           env={"DGP_STUDIO_MAX_MEGAPIXELS": "0.0001"})
    _one_sentence(completed, "photo.png is 24×20 (0.00048 MP), more than the limit of 0.0001 MP")
    assert "corrupt" not in completed.stderr
    assert "--max-megapixels" in completed.stderr and "DGP_STUDIO_MAX_MEGAPIXELS" in completed.stderr


def test_max_megapixels_option_raises_the_limit(photo, tmp_path):
    # With a higher limit the photo passes, so the next problem (no model file) is reported instead.
    completed, _ = run_cli("restore", str(photo), "--task", "colorize", "-o", str(tmp_path / "o.png"),
                           "--max-megapixels", "1", "--model", str(tmp_path / "G.pth"), "--discriminator",
                           str(tmp_path / "D.pth"), env={"DGP_STUDIO_MAX_MEGAPIXELS": "0.0001"})
    assert completed.returncode == 2
    assert "limit" not in completed.stderr and "G.pth" in completed.stderr


# --------------------------------------------------------------------------------------
# Sessions


def _small_session(tmp_path) -> Path:
    rgb = np.random.default_rng(1).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    image, _note = session_image(rgb, name="pasted")
    mask = np.zeros((16, 16), np.uint8)
    mask[4:8, 4:8] = 1
    session = Session(image=image, roi=(0, 0, 16), settings=TaskSettings(task="inpaint"), mask=mask)
    return save_session(tmp_path / "s.dgps", session, embed_states=False).path


def _rewrite_member(path: Path, name: str, data: bytes) -> None:
    with zipfile.ZipFile(path) as source:
        members = [(info.filename, source.read(info.filename)) for info in source.infolist()]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for member, content in members:
            target.writestr(member, data if member == name else content)


def test_a_session_bomb_is_read_with_bounded_memory(tmp_path):
    path = _small_session(tmp_path)
    assert load_session(path).mask is not None
    with zipfile.ZipFile(path) as archive:
        mask_png = archive.read("mask.png")
    # 96 MiB that deflate about 500:1 (under the 1000:1 guard) after a valid mask PNG.
    padding = np.zeros(96 << 20, np.uint8)
    padding[:: 1 << 11] = np.random.default_rng(2).integers(1, 255, padding[:: 1 << 11].size, dtype=np.uint8)
    _rewrite_member(path, "mask.png", mask_png + padding.tobytes())
    del padding
    assert path.stat().st_size < 2 << 20
    tracemalloc.start()
    try:
        session = load_session(path)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert session.mask is not None and session.mask.shape == (16, 16)
    assert peak < 8 << 20, f"peak {peak / 2**20:.1f} MiB for a 96 MiB member"


def test_a_member_larger_than_its_header_says_is_refused_at_once(tmp_path):
    path = _small_session(tmp_path)
    data = bytearray(path.read_bytes())
    # Make the manifest's declared size (local header and central directory) 100 bytes.
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (at := data.find(signature, start)) != -1:
            name_length = struct.unpack_from("<H", data, at + (26 if signature == b"PK\x03\x04" else 28))[0]
            name_at = at + (30 if signature == b"PK\x03\x04" else 46)
            if bytes(data[name_at:name_at + name_length]) == b"session.json":
                struct.pack_into("<I", data, at + offset, 100)
            start = at + 4
    path.write_bytes(bytes(data))
    with pytest.raises(BadInputError, match=r"s\.dgps"):
        load_session(path)


def test_a_session_on_a_read_only_file_system_is_one_sentence(tmp_path, monkeypatch):
    import errno

    import engine.files

    rgb = np.zeros((8, 8, 3), np.uint8)
    image, _note = session_image(rgb, name="pasted")
    session = Session(image=image, roi=(0, 0, 8), settings=TaskSettings(task="colorize"))

    def read_only(path):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(engine.files, "create_temporary", read_only)
    with pytest.raises(BadInputError, match=r"s\.dgps cannot be written \(the file system is read-only\)"):
        save_session(tmp_path / "s.dgps", session, embed_states=False)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------
# State files


def _state_bytes(tensors: dict[str, torch.Tensor], description: object) -> bytes:
    from safetensors.torch import save

    metadata = {"state": description if isinstance(description, str) else json.dumps(description)}
    return save(tensors, metadata=metadata)


GOOD_DESCRIPTION = {"format": "dgp-studio-state", "version": 1, "model_identity": "m", "class_index": 1}
GOOD_TENSORS = {"z": torch.zeros(1, 8), "class_embedding": torch.zeros(1, 4)}

MALFORMED_STATES = {
    "empty": b"",
    "text": b"hello",
    "metadata not JSON": _state_bytes(GOOD_TENSORS, "{not json"),
    "description a list": _state_bytes(GOOD_TENSORS, [1, 2]),
    "version a string": _state_bytes(GOOD_TENSORS, {**GOOD_DESCRIPTION, "version": "x"}),
    "class a string": _state_bytes(GOOD_TENSORS, {**GOOD_DESCRIPTION, "class_index": "one"}),
    "class negative": _state_bytes(GOOD_TENSORS, {**GOOD_DESCRIPTION, "class_index": -3}),
    "no identity": _state_bytes(GOOD_TENSORS, {k: v for k, v in GOOD_DESCRIPTION.items() if k != "model_identity"}),
    "no z": _state_bytes({"class_embedding": torch.zeros(1, 4)}, GOOD_DESCRIPTION),
    "z integer": _state_bytes({**GOOD_TENSORS, "z": torch.zeros(1, 8, dtype=torch.int64)}, GOOD_DESCRIPTION),
    "z 1-D": _state_bytes({**GOOD_TENSORS, "z": torch.zeros(8)}, GOOD_DESCRIPTION),
    "z NaN": _state_bytes({**GOOD_TENSORS, "z": torch.full((1, 8), float("nan"))}, GOOD_DESCRIPTION),
    "info a list": _state_bytes(GOOD_TENSORS, {**GOOD_DESCRIPTION, "info": []}),
    "integer delta": _state_bytes({**GOOD_TENSORS, "delta.w": torch.zeros(2, dtype=torch.int32)},
                                  GOOD_DESCRIPTION),
}


@pytest.mark.parametrize("variant", sorted(MALFORMED_STATES))
def test_malformed_state_files_are_one_sentence(variant, tmp_path):
    from engine.state import GeneratorState

    path = tmp_path / "bad.dgpstate"
    path.write_bytes(MALFORMED_STATES[variant])
    with pytest.raises(BadInputError, match=r"bad\.dgpstate"):
        GeneratorState.load(path)


def test_malformed_states_through_the_command_line(tmp_path):
    path = tmp_path / "bad.dgpstate"
    path.write_bytes(MALFORMED_STATES["class a string"])
    completed, _ = run_cli("jitter", str(path), "--count", "2", "-o", str(tmp_path / "o.png"), timeout=60)
    _one_sentence(completed, "bad.dgpstate")
