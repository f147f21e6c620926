"""Two real processes hammering one result cache never mix or lose entries; entry.json is checksummed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch

from engine.cache import CacheEntryDroppedWarning, StateCache
from engine.errors import BadInputError
from engine.state import GeneratorState, RestoreResult
from tests.conftest import REPO_ROOT

KEYS = [f"{index:064x}" for index in range(1, 4)]

# Each process writes entries whose image, state and sidecar all carry (writer, round), and
# reads the others' entries back: any mix of two writes, or a valid entry dropped as
# unreadable, is printed as a problem.
HAMMER = textwrap.dedent(
    """
    import json, sys, warnings
    import numpy as np, torch
    from engine.cache import CacheEntryDroppedWarning, StateCache
    from engine.state import GeneratorState, RestoreResult

    writer, rounds, root = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    keys = [f"{index:064x}" for index in range(1, 4)]
    cache = StateCache(root, max_bytes=10**9)
    problems, hits = [], 0
    for round_ in range(rounds):
        mark = writer * 1000 + round_
        state = GeneratorState(
            model_identity="m", weight_delta={"w": torch.full((64, 64), float(mark))},
            z=torch.full((1, 8), float(mark)), class_index=writer, class_embedding=torch.zeros(1, 4),
        )
        image = np.zeros((16, 16, 3), np.uint8)
        image[..., 0], image[..., 1], image[..., 2] = writer, round_ % 256, round_ // 256
        result = RestoreResult(
            image=image, degraded=image, target=image, state=state, class_index=writer, top_classes=(),
            losses={"total": float(mark)}, steps_done=1, total_steps=1, seconds=0.0, task="colorize",
            preset="quick",
        )
        cache.put(keys[round_ % len(keys)], result, made_with={"mark": mark})
        for key in keys:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", CacheEntryDroppedWarning)
                entry = cache.get(key)
            problems += [f"dropped: {w.message}" for w in caught]
            if entry is None:
                continue
            hits += 1
            mark_in_sidecar = entry.sidecar["made_with"]["mark"]
            pixel = entry.image[0, 0]
            mark_in_image = int(pixel[0]) * 1000 + int(pixel[1]) + 256 * int(pixel[2])
            marks = {mark_in_sidecar, mark_in_image, int(entry.state.z[0, 0]),
                     int(entry.state.weight_delta["w"][0, 0]), int(entry.sidecar["losses"]["total"])}
            if len(marks) != 1:
                problems.append(f"mixed entry {key[-1]}: {sorted(marks)}")
    print(json.dumps({"problems": problems, "hits": hits}))
    """
)


def test_two_processes_sharing_one_cache_never_mix_or_lose_entries(tmp_path):
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    script = tmp_path / "hammer.py"
    script.write_text(HAMMER)
    root = tmp_path / "cache"
    processes = [
        subprocess.Popen([sys.executable, str(script), str(writer), "40", str(root)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=environment, cwd=REPO_ROOT)
        for writer in (1, 2)
    ]
    reports = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    problems = [problem for report in reports for problem in report["problems"]]
    assert problems == [], problems[:5]
    assert all(report["hits"] > 40 for report in reports)
    # Every key ends as one whole entry, readable by a third process.
    cache = StateCache(root, max_bytes=10**9)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheEntryDroppedWarning)
        assert all(cache.get(key) is not None for key in KEYS)


def _result(mark: int) -> RestoreResult:
    state = GeneratorState(model_identity="m", weight_delta={"w": torch.ones(4)}, z=torch.zeros(1, 8),
                           class_index=3, class_embedding=torch.zeros(1, 4))
    image = np.full((8, 8, 3), mark, np.uint8)
    return RestoreResult(image=image, degraded=image, target=image, state=state, class_index=3, top_classes=(),
                         losses={"total": 1.0}, steps_done=1, total_steps=1, seconds=0.0, task="colorize",
                         preset="quick")


def test_an_edited_entry_json_is_a_miss_not_trusted(tmp_path):
    cache = StateCache(tmp_path, max_bytes=10**9)
    folder = cache.put(KEYS[0], _result(5))
    sidecar_path = folder / "entry.json"
    sidecar = json.loads(sidecar_path.read_text())
    sidecar["class_index"] = 7           # the files still match their checksums
    sidecar_path.write_text(json.dumps(sidecar))
    with pytest.warns(CacheEntryDroppedWarning, match="checksum"):
        assert cache.get(KEYS[0]) is None


def test_a_cache_write_on_a_full_disk_is_one_sentence(tmp_path, monkeypatch):
    import errno

    import engine.cache

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    cache = StateCache(tmp_path, max_bytes=10**9)
    monkeypatch.setattr(engine.cache, "_write_png", full)
    with pytest.raises(BadInputError, match="could not be kept in the cache .*the disk is full"):
        cache.put(KEYS[0], _result(1))
    assert [p.name for p in tmp_path.iterdir() if p.name != ".lock"] == []
