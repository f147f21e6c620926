"""Batch restore: discovery, masks by name, the manifest, resuming, Ctrl+C, SIGKILL and lost workers."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine import batch
from engine.batch import BatchSettings, Manifest, find_images, match_mask, plan_batch
from engine.cli import main as cli_main
from engine.errors import BadInputError
from tests.conftest import REPO_ROOT


def write_photo(path: Path, *, seed: int = 0, size=(40, 36)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def write_mask(path: Path, *, size=(40, 36)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    mask = np.zeros((size[1], size[0]), np.uint8)
    mask[8:20, 10:24] = 255
    Image.fromarray(mask).save(path)
    return path


def model_args(files) -> list[str]:
    return ["--model", str(files[0]), "--discriminator", str(files[1]), "--device", "cpu"]


def fast_args(files, *, scale: str = "0.05") -> list[str]:
    return ["--quick", "--iteration-scale", scale, "--class", "3", "--workers", "1", "--threads", "1",
            *model_args(files)]


def jsonl_records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines() if line.strip()]


def csv_rows(out: Path) -> dict[str, dict]:
    with open(out / "manifest.csv", newline="") as stream:
        return {row["output"]: row for row in csv.DictReader(stream)}


def latest_by_output(records: list[dict]) -> dict[str, dict]:
    latest = {}
    for record in records:
        latest[record["output"]] = record
    return latest


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# -- planning ---------------------------------------------------------------------------


def test_find_images_recurses_with_patterns_and_skips_hidden_and_output(tmp_path):
    album = tmp_path / "album"
    for name in ("a.jpg", "b.png", "2019/c.png", "2019/d.tif", ".hidden.png", ".cache/e.png", "notes.txt",
                 "restored/old.png"):
        target = album / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"x")
    found = find_images([album], skip_folders=[album / "restored"])
    assert [r.as_posix() for _, r in found] == ["a.jpg", "b.png", "2019/c.png", "2019/d.tif"]
    assert [r.as_posix() for _, r in find_images([album], include=["2019/*"])] == ["2019/c.png", "2019/d.tif"]
    assert [r.as_posix() for _, r in find_images([album], exclude=["*.png"], skip_folders=[album / "restored"])] \
        == ["a.jpg", "2019/d.tif"]
    single = find_images([album / "2019" / "c.png"])
    assert [r.as_posix() for _, r in single] == ["c.png"]
    with pytest.raises(BadInputError, match="does not exist"):
        find_images([tmp_path / "nowhere"])


def test_masks_are_matched_by_name(tmp_path):
    masks = tmp_path / "masks"
    for name in ("photo.png", "other_mask.png", "sub/deep.png", "deep.png", "flat_mask.png"):
        (masks / name).parent.mkdir(parents=True, exist_ok=True)
        (masks / name).write_bytes(b"m")
    assert match_mask(Path("photo.jpg"), masks) == masks / "photo.png"
    assert match_mask(Path("other.webp"), masks) == masks / "other_mask.png"
    assert match_mask(Path("sub/deep.jpg"), masks) == masks / "sub" / "deep.png"      # same sub-folder first
    assert match_mask(Path("sub/flat.jpg"), masks) == masks / "flat_mask.png"         # then the top
    assert match_mask(Path("missing.jpg"), masks) is None


def test_plan_names_outputs_refuses_an_input_folder_as_output_and_keys_by_bytes_and_settings(tmp_path):
    album = tmp_path / "album"
    write_photo(album / "a.png")
    write_photo(album / "b.gif", seed=1)
    settings = BatchSettings(task="colorize", model_identity="m")
    items = plan_batch([album], tmp_path / "out", settings)
    assert [item.output for item in items] == [tmp_path / "out" / "a.png", tmp_path / "out" / "b.gif.png"]
    assert all(item.problem is None and len(item.key) == 64 for item in items)
    other_seed = plan_batch([album], tmp_path / "out", BatchSettings(task="colorize", model_identity="m", seed=1))
    assert other_seed[0].key != items[0].key
    write_photo(album / "a.png", seed=5)
    assert plan_batch([album], tmp_path / "out", settings)[0].key != items[0].key
    with pytest.raises(BadInputError, match="is an input folder"):
        plan_batch([album], album, settings)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match="no image"):
        plan_batch([tmp_path / "empty"], tmp_path / "elsewhere", settings)


def test_manifest_ignores_a_line_cut_short_and_starts_the_next_on_its_own_line(tmp_path):
    manifest = Manifest(tmp_path)
    manifest.append({"output": "a.png", "status": "done", "key": "k", "output_sha256": "h"})
    with open(tmp_path / "manifest.jsonl", "ab") as stream:
        stream.write(b'{"output": "b.png", "sta')
    reread = Manifest(tmp_path)
    assert list(reread.latest) == ["a.png"]
    reread.append({"output": "c.png", "status": "failed", "key": "k2", "error": "bad."})
    assert list(Manifest(tmp_path).latest) == ["a.png", "c.png"]
    assert set(csv_rows(tmp_path)) == {"a.png", "c.png"}


# -- whole batches ----------------------------------------------------------------------


def test_batch_records_a_corrupt_photo_and_a_missing_mask_and_restores_the_rest(tiny_model_files, tmp_path, capsys):
    album, masks, out = tmp_path / "album", tmp_path / "masks", tmp_path / "out"
    write_photo(album / "cat.jpg", seed=1)
    write_photo(album / "trip" / "dog.png", seed=2, size=(30, 44))
    write_photo(album / "nomask.png", seed=3)
    (album / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a picture")
    write_mask(masks / "cat.png")
    write_mask(masks / "trip" / "dog_mask.png", size=(30, 44))
    write_mask(masks / "broken.png")
    originals = snapshot(album)

    code = cli_main(["batch", str(album), "-o", str(out), "--task", "inpaint", "--masks", str(masks),
                     *fast_args(tiny_model_files)])
    assert code == 2, capsys.readouterr().err
    assert snapshot(album) == originals
    with Image.open(out / "cat.jpg") as image:
        assert image.size == (40, 36) and image.format == "JPEG"
    with Image.open(out / "trip" / "dog.png") as image:
        assert image.size == (30, 44)
    assert not (out / "nomask.png").exists() and not (out / "broken.png").exists()

    rows = csv_rows(out)
    assert set(rows) == {"cat.jpg", "trip/dog.png", "nomask.png", "broken.png"}
    assert {name: row["status"] for name, row in rows.items()} == {
        "cat.jpg": "done", "trip/dog.png": "done", "nomask.png": "failed", "broken.png": "failed"}
    assert "no mask" in rows["nomask.png"]["error"] and "nomask_mask.png" in rows["nomask.png"]["error"]
    assert str(album / "broken.png") in rows["broken.png"]["error"]
    assert rows["broken.png"]["error"].count(". ") == 0 and rows["broken.png"]["error"].endswith(".")
    done = rows["cat.jpg"]
    assert done["input"] == str(album / "cat.jpg") and done["task"] == "inpaint"
    assert done["class"].startswith("3 ") and float(done["seconds"]) > 0 and np.isfinite(float(done["loss"]))
    assert len(done["key"]) == 64 and done["error"] == ""
    from engine.checksums import sha256_file

    assert done["output_sha256"] == sha256_file(out / "cat.jpg")
    records = jsonl_records(out)
    assert [r["status"] for r in records if r["output"] == "cat.jpg"] == ["started", "done"]
    assert latest_by_output(records)["trip/dog.png"]["status"] == "done"
    err = capsys.readouterr().err
    assert "2 restored" in err and "2 failed" in err and "Traceback" not in err


def test_second_run_skips_done_photos_retries_failed_ones_and_redoes_changed_settings(tiny_model_files, tmp_path):
    album, out = tmp_path / "album", tmp_path / "out"
    write_photo(album / "a.png", seed=1)
    write_photo(album / "b.png", seed=2)
    (album / "c.png").write_bytes(b"broken")
    args = ["batch", str(album), "-o", str(out), "--task", "colorize", *fast_args(tiny_model_files)]
    assert cli_main(args) == 2
    first_a = (out / "a.png").stat()
    started = len(jsonl_records(out))

    assert cli_main([*args, "--no-retry-failed"]) == 2               # nothing to run: c stays failed
    assert len(jsonl_records(out)) == started
    write_photo(album / "c.png", seed=3)                              # fixed: its key changes, so it runs
    assert cli_main(args) == 0
    new = jsonl_records(out)[started:]
    assert {r["output"] for r in new} == {"c.png"}
    assert (out / "a.png").stat().st_mtime_ns == first_a.st_mtime_ns

    (out / "b.png").write_bytes(b"edited by hand")                   # no longer what the batch wrote
    assert cli_main([*args, "--seed", "4"]) == 2                       # other settings: everything again ...
    latest = latest_by_output(jsonl_records(out))
    assert latest["a.png"]["status"] == latest["c.png"]["status"] == "done"
    assert len([r for r in jsonl_records(out) if r["output"] == "a.png" and r["status"] == "done"]) == 2
    assert (out / "a.png").stat().st_mtime_ns != first_a.st_mtime_ns
    assert latest["b.png"]["status"] == "failed" and "was changed since" in latest["b.png"]["error"]
    assert (out / "b.png").read_bytes() == b"edited by hand"         # ... but the edited file stays


def test_an_output_the_batch_did_not_write_is_never_replaced(tiny_model_files, tmp_path):
    album, out = tmp_path / "album", tmp_path / "out"
    write_photo(album / "a.png", seed=1)
    write_photo(album / "b.png", seed=2)
    out.mkdir()
    (out / "a.png").write_bytes(b"the user's own file")
    assert cli_main(["batch", str(album), "-o", str(out), "--task", "colorize", *fast_args(tiny_model_files)]) == 2
    assert (out / "a.png").read_bytes() == b"the user's own file"
    rows = csv_rows(out)
    assert rows["a.png"]["status"] == "failed" and "did not write it" in rows["a.png"]["error"]
    assert rows["b.png"]["status"] == "done"


def test_save_state_writes_a_loadable_state_and_an_unrecorded_result_of_the_batch_is_replaced(tiny_model_files, tmp_path):
    album, out = tmp_path / "album", tmp_path / "out"
    write_photo(album / "a.png", seed=1)
    assert cli_main(["batch", str(album), "-o", str(out), "--task", "reconstruct", "--save-state",
                     *fast_args(tiny_model_files)]) == 0
    from engine.state import GeneratorState

    state = GeneratorState.load(out / "a.png.dgpstate")
    assert state.class_index == 3
    assert csv_rows(out)["a.png"]["state"] == "a.png.dgpstate"

    # Killed after writing the result but before recording it: the file carries the batch's key,
    # so the next run may replace it, and does.
    lines = (out / "manifest.jsonl").read_text().splitlines(keepends=True)
    (out / "manifest.jsonl").write_text(lines[0])
    assert cli_main(["batch", str(album), "-o", str(out), "--task", "reconstruct", "--save-state",
                     *fast_args(tiny_model_files)]) == 0
    assert [r["status"] for r in jsonl_records(out)] == ["started", "started", "done"]


def test_json_progress_reports_the_plan_each_photo_and_the_end(tiny_model_files, tmp_path, capsys):
    album, out = tmp_path / "album", tmp_path / "out"
    write_photo(album / "a.png", seed=1)
    write_photo(album / "b.png", seed=2)
    assert cli_main(["batch", str(album), "-o", str(out), "--task", "colorize", "--json-progress",
                     *fast_args(tiny_model_files)]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "plan" and events[0]["to_run"] == 2 and kinds[-1] == "finished"
    assert kinds.count("record") == 2 and kinds.count("started") == 2
    progress = [e["done"] for e in events if e["event"] == "progress"]
    assert progress == sorted(progress) and progress[-1] == 2
    assert events[-1]["done"] == 2 and events[-1]["out_dir"] == str(out)


def test_bad_batch_arguments_are_one_sentence_and_exit_2(tiny_model_files, tmp_path, capsys):
    album = tmp_path / "album"
    write_photo(album / "a.png")
    assert cli_main(["batch", str(album), "-o", str(album), "--task", "colorize", *model_args(tiny_model_files)]) == 2
    assert "is an input folder" in capsys.readouterr().err
    assert cli_main(["batch", str(album), "-o", str(tmp_path / "o"), "--task", "inpaint", "--masks",
                     str(tmp_path / "nope"), *model_args(tiny_model_files)]) == 2
    err = capsys.readouterr().err
    assert "the masks folder does not exist" in err and "Traceback" not in err
    assert cli_main(["batch", str(album), "-o", str(tmp_path / "o"), "--task", "colorize", "--class", "nonsense",
                     *model_args(tiny_model_files)]) == 2
    assert "unknown class name" in capsys.readouterr().err
    (tmp_path / "a-file").write_text("x")
    assert cli_main(["batch", str(album), "-o", str(tmp_path / "a-file" / "out"), "--task", "colorize",
                     *model_args(tiny_model_files)]) == 2
    err = capsys.readouterr().err
    assert "is not a folder" in err and "Traceback" not in err


def test_a_photo_whose_worker_dies_is_given_to_a_new_worker(tiny_model_files, tmp_path):
    album, out = tmp_path / "album", tmp_path / "out"
    for index in range(3):
        write_photo(album / f"p{index}.png", seed=index)
    settings = BatchSettings(task="colorize", quick=True, iteration_scale=1.0, class_index=3,
                             model=str(tiny_model_files[0]), discriminator=str(tiny_model_files[1]),
                             device="cpu", threads=1, model_identity="tiny")
    items = plan_batch([album], out, settings)
    pools = []
    killed = []

    def make_pool():
        pools.append(batch.LocalPool(settings, 1))
        return pools[-1]

    def on_event(kind, data):
        if kind == "started" and data["output"] == "p1.png" and not killed:
            time.sleep(0.3)
            killed.append(data["output"])
            os.kill(pools[0].processes[data["worker"]].pid, signal.SIGKILL)

    summary = batch.run_batch(items, settings, out, make_pool=make_pool, on_event=on_event)
    assert killed == ["p1.png"]
    assert summary.done == 3 and summary.failed == 0
    p1 = [r for r in jsonl_records(out) if r["output"] == "p1.png"]
    assert [(r["status"], r["attempt"]) for r in p1] == [("started", 1), ("started", 2), ("done", 2)]


# -- real processes: SIGKILL and Ctrl+C -------------------------------------------------


def _batch_process(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-m", "engine.cli", "batch", *args], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _wait_for_done_records(out: Path, count: int, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (out / "manifest.jsonl").exists():
            done = [r for r in jsonl_records_tolerant(out) if r["status"] == "done"]
            if len(done) >= count:
                return
        if process.poll() is not None:
            pytest.fail(f"the batch ended early: {process.stderr.read()}")
        time.sleep(0.02)
    process.kill()
    pytest.fail("no photo was finished in time")


def jsonl_records_tolerant(out: Path) -> list[dict]:
    records = []
    for line in (out / "manifest.jsonl").read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            pass
    return records


def test_resume_after_the_batch_is_killed_leaves_no_half_files_and_redoes_no_done_photo(tiny_model_files, tmp_path):
    album, out = tmp_path / "album", tmp_path / "out"
    for index in range(8):
        write_photo(album / f"p{index}.png", seed=index)
    args = [str(album), "-o", str(out), "--task", "colorize", *fast_args(tiny_model_files, scale="2")]
    process = _batch_process(args)
    _wait_for_done_records(out, 1, process)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)
    time.sleep(1.5)                                   # orphaned workers notice and stop
    before = jsonl_records_tolerant(out)
    done_before = {r["output"] for r in before if r["status"] == "done"}
    assert 1 <= len(done_before) < 8
    for path in out.glob("p*.png"):                   # every visible result is a whole image
        with Image.open(path) as image:
            image.load()
    done_stats = {name: (out / name).stat().st_mtime_ns for name in done_before}

    process = _batch_process(args)
    assert process.wait(180) == 0, process.stderr.read()
    after = jsonl_records_tolerant(out)[len(before):]
    assert not ({r["output"] for r in after} & done_before)          # done photos are not redone
    assert {name: (out / name).stat().st_mtime_ns for name in done_before} == done_stats
    assert all(r["status"] == "done" for r in latest_by_output(jsonl_records(out)).values())
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"p{i}.png" for i in range(8)] + ["manifest.csv", "manifest.jsonl", batch.LOCK_NAME])


def test_ctrl_c_cancels_the_photo_in_flight_and_leaves_a_consistent_manifest(tiny_model_files, tmp_path):
    album, out = tmp_path / "album", tmp_path / "out"
    for index in range(6):
        write_photo(album / f"p{index}.png", seed=index)
    process = _batch_process([str(album), "-o", str(out), "--task", "colorize",
                              *fast_args(tiny_model_files, scale="4")])
    _wait_for_done_records(out, 1, process)
    deadline = time.monotonic() + 60                  # a photo handed out and not finished yet
    while not any(r["status"] == "started" for r in latest_by_output(jsonl_records_tolerant(out)).values()):
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGINT)
    assert process.wait(60) == 130
    assert "interrupted" in process.stderr.read()
    records = jsonl_records(out)
    latest = latest_by_output(records)
    assert {r["status"] for r in latest.values()} <= {"done", "cancelled"}
    assert "cancelled" in {r["status"] for r in latest.values()}
    assert len(latest) < 6                                               # nothing new was started
    rows = csv_rows(out)
    assert {name: row["status"] for name, row in rows.items()} == {n: r["status"] for n, r in latest.items()}
    for name, record in latest.items():
        assert (out / name).exists() == (record["status"] == "done")
    from engine.files import is_temporary_name

    assert not [p for p in out.rglob("*") if is_temporary_name(p.name)]


# -- Ray ----------------------------------------------------------------------------------


def test_a_real_local_ray_cluster_runs_the_batch_and_retries_a_killed_actors_photo(tiny_model_files, tmp_path):
    ray = pytest.importorskip("ray", reason='the cluster extra is not installed (pip install "dgp-studio[cluster]")')
    from engine.batch_ray import RayPool

    album, out = tmp_path / "album", tmp_path / "out"
    for index in range(4):
        write_photo(album / f"p{index}.png", seed=index)
    settings = BatchSettings(task="colorize", quick=True, iteration_scale=2.0, class_index=3,
                             model=str(tiny_model_files[0]), discriminator=str(tiny_model_files[1]),
                             device="cpu", threads=1, model_identity="tiny")
    items = plan_batch([album], out, settings)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO_ROOT)}})
    try:
        pools, killed = [], []

        def make_pool():
            pools.append(RayPool(settings, workers=2))
            return pools[-1]

        def on_event(kind, data):
            if kind == "started" and not killed:
                actor = pools[0].actors[data["worker"]]
                killed.append(data["output"])
                threading.Timer(0.5, lambda: ray.kill(actor, no_restart=True)).start()

        summary = batch.run_batch(items, settings, out, make_pool=make_pool, on_event=on_event)
    finally:
        ray.shutdown()
    assert summary.done == 4 and summary.failed == 0
    assert len(killed) == 1
    tries = [r for r in jsonl_records(out) if r["output"] == killed[0]]
    assert [(r["status"], r["attempt"]) for r in tries] == [("started", 1), ("started", 2), ("done", 2)]
    for index in range(4):
        with Image.open(out / f"p{index}.png") as image:
            assert image.size == (40, 36)


def test_the_engine_and_the_batch_import_without_ray():
    code = ("import sys, engine.batch, engine.cli, engine.api; "
            "sys.exit(1 if any(m == 'ray' or m.startswith('ray.') for m in sys.modules) else 0)")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, check=False).returncode == 0


def test_cluster_without_ray_installed_is_one_sentence(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)          # makes "import ray" fail like a missing package
    from engine.batch_ray import RayPool

    with pytest.raises(BadInputError, match=r'pip install "dgp-studio\[cluster\]"'):
        RayPool(BatchSettings(task="colorize"), workers=1)


def test_default_workers_are_one_per_core_capped_and_one_on_a_gpu(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert batch.default_workers("cpu") == 2
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert batch.default_workers("cpu") == batch.MAX_DEFAULT_WORKERS == 8
    assert batch.default_workers("cuda") == batch.default_workers("mps") == 1
