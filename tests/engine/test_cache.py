"""The restore cache: keys, round trips, LRU eviction, corruption and crash safety."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.api import Engine, load_model
from engine.cache import (
    IMAGE_FILE,
    SIDECAR_FILE,
    STATE_FILE,
    CacheEntryDroppedWarning,
    StateCache,
    cache_key,
)
from engine.errors import BadInputError
from engine.state import GeneratorState, RestoreResult
from tests.conftest import make_tiny_biggan

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def engine() -> Engine:
    generator, discriminator = make_tiny_biggan()
    return Engine(load_model((generator, discriminator)), device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def state(engine: Engine) -> GeneratorState:
    """A state like a fine-tune leaves: every weight moved a little, z and class set."""
    tuned = copy.deepcopy(engine.G)
    rng = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in tuned.parameters():
            noise = torch.randn(parameter.shape, generator=rng)
            parameter.add_(0.05 * (parameter.abs().mean() + 0.01) * noise)
    z = torch.randn(1, engine.G.config.dim_z, generator=rng)
    return GeneratorState.capture(
        engine.G, tuned, z, 3, model_identity=engine.model.identity, use_in=False, task="colorize",
        preset="quick",
    )


def make_result(engine: Engine, state: GeneratorState, *, composite: bool = False) -> RestoreResult:
    image = engine.render(state)
    return RestoreResult(
        image=image, degraded=image, target=image, state=state, class_index=state.class_index,
        top_classes=((3, 0.25), (1, 0.5)), losses={"total": 0.25}, steps_done=10, total_steps=10,
        seconds=1.5, task="colorize", preset="quick",
        composite=np.tile(image, (2, 3, 1)) if composite else None,
    )


def key_for(seed: int) -> str:
    return cache_key(
        input_rgb_model=np.full((32, 32, 3), 7, np.uint8), mask=None, task="colorize", preset="quick",
        settings={"quick": True}, class_index=3, seed=seed, model_identity="m", engine_version="0.1.0",
    )


# -- keys ----------------------------------------------------------------------


def test_cache_key_is_stable_and_changes_with_every_input():
    image = np.arange(32 * 32 * 3, dtype=np.uint8).reshape(32, 32, 3)
    base = dict(
        input_rgb_model=image, mask=None, task="inpaint", preset="default",
        settings={"sr_factor": 4, "quick": False}, class_index=None, seed=0,
        model_identity="abc", engine_version="0.1.0",
    )
    key = cache_key(**base)
    assert len(key) == 64 and int(key, 16) >= 0
    assert cache_key(**{**base, "input_rgb_model": image.copy()}) == key
    assert cache_key(**{**base, "settings": {"quick": False, "sr_factor": 4}}) == key   # order-free
    changed_image = image.copy()
    changed_image[5, 5, 1] ^= 1
    variants = [
        {"input_rgb_model": changed_image},
        {"input_rgb_model": image.reshape(16, 64, 3)},
        {"mask": np.zeros((32, 32), np.float32)},
        {"task": "colorize"},
        {"preset": "quick"},
        {"preset": None},
        {"settings": {"sr_factor": 8, "quick": False}},
        {"class_index": 0},
        {"seed": 1},
        {"model_identity": "abd"},
        {"engine_version": "0.2.0"},
    ]
    keys = {cache_key(**{**base, **variant}) for variant in variants}
    assert key not in keys and len(keys) == len(variants)


def test_cache_key_refuses_settings_without_a_stable_text_form():
    with pytest.raises(BadInputError, match="settings"):
        cache_key(
            input_rgb_model=np.zeros((4, 4, 3), np.uint8), mask=None, task="sr", preset=None,
            settings={"callback": object()}, class_index=None, seed=0, model_identity="m", engine_version="1",
        )


# -- round trip ------------------------------------------------------------------


def test_round_trip_reproduces_the_image(engine, state, tmp_path):
    result = make_result(engine, state, composite=True)
    cache = StateCache(tmp_path / "cache", max_bytes=10**9)
    key = key_for(0)
    folder = cache.put(key, result, made_with={"task": "colorize", "seed": 0})
    expected_files = [STATE_FILE, IMAGE_FILE, "composite.png", SIDECAR_FILE]
    assert sorted(p.name for p in folder.iterdir()) == sorted(expected_files)

    entry = cache.get(key)
    assert entry is not None
    np.testing.assert_array_equal(entry.image, result.image)          # PNG is lossless
    np.testing.assert_array_equal(entry.composite, result.composite)
    assert entry.state.class_index == state.class_index
    torch.testing.assert_close(entry.state.z, state.z, rtol=0, atol=0)
    assert entry.state.weight_delta.keys() == state.weight_delta.keys()

    # The fp16 delta still renders the same picture as the full-precision state...
    rendered = engine.render(entry.state)
    difference = np.abs(rendered.astype(int) - result.image.astype(int))
    assert difference.max() <= 2 and difference.mean() < 0.05
    # ...and the delta matters: without it the picture is clearly another one.
    bare = GeneratorState(
        model_identity=state.model_identity, weight_delta={}, z=state.z, class_index=state.class_index,
        class_embedding=state.class_embedding,
    )
    assert np.abs(engine.render(bare).astype(int) - result.image.astype(int)).mean() > 1.0

    sidecar = entry.sidecar
    assert sidecar["delta_dtype"] == "float16"
    assert sidecar["made_with"] == {"seed": 0, "task": "colorize"}
    assert sidecar["task"] == "colorize" and sidecar["image_size"] == [32, 32]
    assert sidecar["files"]["state"]["size"] == (folder / STATE_FILE).stat().st_size


def test_the_weight_delta_is_stored_in_float16(engine, state, tmp_path):
    from safetensors import safe_open

    cache = StateCache(tmp_path, max_bytes=10**9)
    folder = cache.put(key_for(0), make_result(engine, state))
    with safe_open(str(folder / STATE_FILE), framework="pt") as handle:
        dtypes = {handle.get_tensor(name).dtype for name in handle.keys() if name.startswith("delta.")}  # noqa: SIM118 - a safetensors handle, not a dict
    assert dtypes == {torch.float16}
    float32_bytes = state.nbytes(torch.float32)
    assert (folder / STATE_FILE).stat().st_size < 0.6 * float32_bytes


def test_put_replaces_an_entry_with_the_same_key(engine, state, tmp_path):
    cache = StateCache(tmp_path, max_bytes=10**9)
    key = key_for(0)
    cache.put(key, make_result(engine, state))
    cache.put(key, make_result(engine, state, composite=True))
    assert [info.key for info in cache.entries()] == [key]
    assert cache.get(key).composite is not None
    assert [p.name for p in _contents(tmp_path)] == [key]


# -- eviction --------------------------------------------------------------------


def test_eviction_keeps_the_most_recently_used(engine, state, tmp_path):
    result = make_result(engine, state)
    cache = StateCache(tmp_path, max_bytes=10**9)
    first, second, third = key_for(1), key_for(2), key_for(3)
    cache.put(first, result)
    entry_bytes = cache.entries()[0].size_bytes
    assert entry_bytes > 0
    cache.set_max_bytes(int(entry_bytes * 2.5))   # room for two entries
    cache.put(second, result)
    assert cache.get(first) is not None             # first is now more recent than second
    cache.put(third, result)
    assert [info.key for info in cache.entries()] == [third, first]
    assert cache.get(second) is None
    assert cache.size_bytes() <= cache.max_bytes


def test_an_entry_larger_than_the_limit_is_the_only_one_kept(engine, state, tmp_path):
    result = make_result(engine, state)
    cache = StateCache(tmp_path, max_bytes=10)
    cache.put(key_for(1), result)
    cache.put(key_for(2), result)
    assert [info.key for info in cache.entries()] == [key_for(2)]


def test_clear_and_a_smaller_limit_free_the_space(engine, state, tmp_path):
    result = make_result(engine, state)
    cache = StateCache(tmp_path, max_bytes=10**9)
    for seed in range(3):
        cache.put(key_for(seed), result)
    total = cache.size_bytes()
    one = cache.entries()[0].size_bytes
    assert cache.set_max_bytes(one) == total - one
    assert len(cache.entries()) == 1
    assert cache.clear() == one
    assert cache.entries() == [] and cache.size_bytes() == 0
    with pytest.raises(BadInputError, match="size limit"):
        cache.set_max_bytes(-1)


# -- damage --------------------------------------------------------------------


def _flip_byte(path: Path, *, at_fraction: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * at_fraction)] ^= 0x40
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["flip state byte", "truncate state", "flip image byte", "garbage sidecar",
                                    "delete image"])
def test_a_damaged_entry_is_dropped_with_a_warning(engine, state, tmp_path, damage):
    cache = StateCache(tmp_path, max_bytes=10**9)
    key = key_for(0)
    folder = cache.put(key, make_result(engine, state))
    if damage == "flip state byte":
        _flip_byte(folder / STATE_FILE, at_fraction=0.7)
    elif damage == "truncate state":
        with open(folder / STATE_FILE, "r+b") as handle:
            handle.truncate(100)
    elif damage == "flip image byte":
        _flip_byte(folder / IMAGE_FILE)
    elif damage == "garbage sidecar":
        (folder / SIDECAR_FILE).write_text("{not json", encoding="utf-8")
    else:
        (folder / IMAGE_FILE).unlink()
    with pytest.warns(CacheEntryDroppedWarning, match="unreadable"):
        assert cache.get(key) is None
    assert not folder.exists()
    assert cache.entries() == []


def test_a_state_file_whose_checksum_was_updated_still_must_load(engine, state, tmp_path):
    """Even with a matching checksum, a state file that does not parse is a miss, not a crash."""
    cache = StateCache(tmp_path, max_bytes=10**9)
    key = key_for(0)
    folder = cache.put(key, make_result(engine, state))
    (folder / STATE_FILE).write_bytes(b"not safetensors at all")
    sidecar = json.loads((folder / SIDECAR_FILE).read_text())
    import hashlib

    sidecar["files"]["state"].update(size=22, sha256=hashlib.sha256(b"not safetensors at all").hexdigest())
    (folder / SIDECAR_FILE).write_text(json.dumps(sidecar))
    with pytest.warns(CacheEntryDroppedWarning):
        assert cache.get(key) is None


# -- atomicity --------------------------------------------------------------------


def _fail_final_rename(monkeypatch, cache: StateCache, key: str) -> None:
    real_replace = os.replace

    def replace(source, destination):
        if Path(destination) == cache.root / key:
            raise OSError("simulated crash between writing the entry and renaming it")
        return real_replace(source, destination)

    monkeypatch.setattr(os, "replace", replace)


def _contents(folder):
    """What the cache folder holds besides its lock file."""
    return sorted(p for p in folder.iterdir() if p.name != ".lock")


def test_a_failed_rename_leaves_no_entry_and_no_leftovers(engine, state, tmp_path, monkeypatch):
    cache = StateCache(tmp_path, max_bytes=10**9)
    key = key_for(0)
    _fail_final_rename(monkeypatch, cache, key)
    with pytest.raises(BadInputError, match="could not be kept in the cache .*simulated crash"):
        cache.put(key, make_result(engine, state))
    assert key not in cache
    assert cache.get(key) is None
    assert _contents(tmp_path) == []


def test_a_crash_before_the_rename_leaves_only_a_hidden_folder_that_is_swept(
    engine, state, tmp_path, monkeypatch
):
    cache = StateCache(tmp_path, max_bytes=10**9)
    key = key_for(0)
    _fail_final_rename(monkeypatch, cache, key)
    # A killed process does not clean up after itself.
    monkeypatch.setattr(StateCache, "_delete", staticmethod(lambda path: None))
    with pytest.raises(BadInputError):
        cache.put(key, make_result(engine, state))
    monkeypatch.undo()
    leftovers = _contents(tmp_path)
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".")
    assert cache.get(key) is None and cache.entries() == []
    StateCache(tmp_path, max_bytes=10**9)                       # a young leftover may be another writer's
    assert _contents(tmp_path) == leftovers
    StateCache(tmp_path, max_bytes=10**9, stale_temporary_seconds=0)
    assert _contents(tmp_path) == []


def test_malformed_keys_are_refused(tmp_path):
    cache = StateCache(tmp_path, max_bytes=1)
    for key in ("../escape", "ABC", "0" * 63):
        with pytest.raises(BadInputError, match="cache key"):
            cache.get(key)
