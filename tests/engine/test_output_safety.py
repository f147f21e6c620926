"""No output option of any command may replace an input or an existing file, and every output
path is checked before any work starts: through the real command line, in a subprocess."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.errors import BadInputError
from engine.files import (
    atomic_open,
    check_output,
    clean_stale_temporaries,
    is_temporary_name,
    temporary_name,
    write_bytes_atomically,
)
from tests.conftest import REPO_ROOT, refused_quickly


@pytest.fixture()
def inputs(tmp_path):
    rng = np.random.default_rng(0)
    photo = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 255, (24, 30, 3), dtype=np.uint8)).save(photo)
    mask = np.zeros((24, 30), np.uint8)
    mask[5:10, 5:10] = 255
    mask_path = tmp_path / "mask.png"
    Image.fromarray(mask).save(mask_path)
    state = tmp_path / "a.dgpstate"
    state.write_bytes(b"not really a state, but it is the user's file")
    return {"photo": photo, "mask": mask_path, "state": state}


def _digests(paths) -> dict[str, str]:
    return {str(p): hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths if Path(p).is_file()}


def run_cli(*args: str, timeout: float = 60.0) -> tuple[subprocess.CompletedProcess, float]:
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", "engine.cli", *args], check=False, capture_output=True, text=True, timeout=timeout,
        env=environment, cwd=REPO_ROOT,
    )
    return completed, time.perf_counter() - started


def model_args(files) -> list[str]:
    return ["--model", str(files[0]), "--discriminator", str(files[1]), "--device", "cpu"]


def _refused(completed: subprocess.CompletedProcess, fragment: str) -> None:
    assert completed.returncode == 2, completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr      # one sentence, no traceback
    assert "Traceback" not in completed.stderr
    assert fragment in lines[0], lines[0]


# Each case: the arguments after "restore photo --task ..." and a fragment of the sentence.
RESTORE_CASES = {
    "save-state is the photo": (lambda t, i, m: ["-o", str(t / "o.png"), "--save-state", str(i["photo"])],
                                "is the photo"),
    "save-state is the mask": (lambda t, i, m: ["--task", "inpaint", "--mask", str(i["mask"]), "-o",
                                                str(t / "o.png"), "--save-state", str(i["mask"])], "is the mask"),
    "save-state is the discriminator": (lambda t, i, m: ["-o", str(t / "o.png"), "--save-state", str(m[1]),
                                                         "--overwrite"], "discriminator"),
    "save-state is -o": (lambda t, i, m: ["-o", str(t / "o.png"), "--save-state", str(t / "o.png")],
                         "both name"),
    "save-state exists": (lambda t, i, m: ["-o", str(t / "o.png"), "--save-state", str(i["state"])],
                          "already exists"),
    "save-state folder missing": (lambda t, i, m: ["-o", str(t / "o.png"), "--save-state",
                                                   str(t / "nowhere" / "s.dgpstate")], "does not exist"),
    "save-state is a folder": (lambda t, i, m: ["-o", str(t / "o.png"), "--save-state", str(t)], "is a folder"),
    "-o is the mask even with overwrite": (lambda t, i, m: ["--task", "inpaint", "--mask", str(i["mask"]),
                                                            "-o", str(i["mask"]), "--overwrite"], "is the mask"),
    "-o folder missing": (lambda t, i, m: ["-o", str(t / "nowhere" / "o.png")], "does not exist"),
    "-o unsupported suffix": (lambda t, i, m: ["-o", str(t / "o.bmp")], "unsupported suffix"),
    "-o is a folder": (lambda t, i, m: ["-o", str(t / "dir.png")], "is a folder"),
    "-o dangling symlink": (lambda t, i, m: ["-o", str(t / "dangling.png")], "symbolic link to a missing"),
    "-o hard link to the photo": (lambda t, i, m: ["-o", str(t / "hard.png"), "--overwrite"], "is the photo"),
    "-o symlink to the photo": (lambda t, i, m: ["-o", str(t / "soft.png"), "--overwrite"], "is the photo"),
    "-o symlink loop": (lambda t, i, m: ["-o", str(t / "loop.png")], "symbolic link loop"),
    "--frames names a file": (lambda t, i, m: ["-o", str(t / "o.png"), "--frames", str(i["state"])],
                              "is a file, not a folder"),
    "--frames below a file": (lambda t, i, m: ["-o", str(t / "o.png"), "--frames", str(i["state"] / "f")],
                              "a part of it is a file"),
}


@pytest.mark.parametrize("case", sorted(RESTORE_CASES))
def test_restore_outputs_are_checked_before_any_work(case, inputs, tiny_model_files, tmp_path):
    (tmp_path / "dir.png").mkdir()
    (tmp_path / "dangling.png").symlink_to(tmp_path / "gone.png")
    os.link(inputs["photo"], tmp_path / "hard.png")
    (tmp_path / "soft.png").symlink_to(inputs["photo"])
    (tmp_path / "loop.png").symlink_to(tmp_path / "loop.png")
    make_args, fragment = RESTORE_CASES[case]
    extra = make_args(tmp_path, inputs, tiny_model_files)
    task = [] if "--task" in extra else ["--task", "colorize"]
    protected = [*inputs.values(), *tiny_model_files]
    before = _digests(protected)
    completed, seconds = run_cli("restore", str(inputs["photo"]), *task, *extra, *model_args(tiny_model_files))
    _refused(completed, fragment)
    assert refused_quickly(seconds), f"refused after {seconds:.2f} s: the check must come before the model loads"
    assert _digests(protected) == before
    assert not (tmp_path / "o.png").exists()


def test_every_command_protects_its_inputs(inputs, tiny_model_files, tmp_path):
    state = inputs["state"]
    other = tmp_path / "b.dgpstate"
    other.write_bytes(b"another state")
    data = tmp_path / "val.tar"
    data.write_bytes(b"tar")
    report = tmp_path / "report.txt"
    report.write_text("a file, not a folder")
    cases = [
        (["jitter", str(state), "-o", str(state), "--overwrite"], "is the state file"),
        (["transfer", str(state), "--class", "1", "-o", str(state), "--overwrite"], "is the state file"),
        (["morph", str(state), str(other), "-o", str(other), "--overwrite"], "is the state file"),
        (["morph", str(state), str(other), "-o", str(tmp_path / "m.avi")], "unsupported suffix"),
        (["morph", str(state), str(other), "-o", str(state / "frames")], "a part of it is a file"),
        (["transfer", str(state), "--class", "1", "-o", str(tiny_model_files[1]), *model_args(tiny_model_files)],
         "is the discriminator checkpoint"),
        (["jitter", str(state), "-o", str(tiny_model_files[0]), "--overwrite"], "unsupported suffix"),
        (["evaluate", "--data", str(data), "--out", str(report)], "is a file, not a folder"),
        (["evaluate", "--data", str(data), "--out", str(data)], "is the validation data"),
        (["train", "--data", str(tmp_path), "--out", str(tmp_path)], "is the training data folder"),
    ]
    protected = [state, other, data, report, *tiny_model_files]
    before = _digests(protected)
    for args, fragment in cases:
        completed, seconds = run_cli(*args)
        _refused(completed, fragment)
        assert refused_quickly(seconds), (args, seconds)
    assert _digests(protected) == before


def test_save_state_never_replaces_a_file_without_overwrite_even_after_a_run(tiny_model_files, inputs, tmp_path):
    from engine.cli import main

    out, state = tmp_path / "o.png", tmp_path / "s.dgpstate"
    arguments = ["restore", str(inputs["photo"]), "--task", "colorize", "--quick", "--iteration-scale", "0.05",
                 "--class", "1", "-o", str(out), "--save-state", str(state), *model_args(tiny_model_files)]
    assert main(arguments) == 0
    assert out.stat().st_mode & 0o777 == state.stat().st_mode & 0o777 == 0o666 & ~_umask()
    before = _digests([out, state])
    assert main(arguments) == 2          # both exist now
    assert _digests([out, state]) == before
    assert main([*arguments, "--overwrite"]) == 0


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


@pytest.mark.parametrize(
    "option, value, fragment",
    [
        ("--seed", str(2**70), "--seed"),
        ("--seed", "-1", "--seed"),
        ("--threads", "-1", "--threads"),
        ("--iteration-scale", "0", "--iteration-scale"),
        ("--iteration-scale", "nan", "--iteration-scale"),
        ("--max-megapixels", "-5", "--max-megapixels"),
    ],
)
def test_numeric_restore_options_have_ranges(option, value, fragment, inputs, tmp_path):
    completed, seconds = run_cli("restore", str(inputs["photo"]), "--task", "colorize", "-o",
                                 str(tmp_path / "o.png"), option, value)
    _refused(completed, fragment)
    assert refused_quickly(seconds)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["morph", "A", "B", "--size", "100000"], "--size"),
        (["morph", "A", "B", "--frames", "1"], "--frames"),
        (["morph", "A", "B", "--fps", "0"], "--fps"),
        (["jitter", "A", "--count", "200000"], "--count"),
        (["jitter", "A", "--sigma", "-1"], "--sigma"),
        (["jitter", "A", "--columns", "0"], "--columns"),
    ],
)
def test_numeric_options_of_the_other_commands_have_ranges(args, fragment, tmp_path):
    completed, seconds = run_cli(*args, "-o", str(tmp_path / "o.png"))
    _refused(completed, fragment)
    assert refused_quickly(seconds)


def test_transfer_class_count_is_bounded(inputs, tmp_path):
    classes = [part for index in range(300) for part in ("--class", str(index % 5))]
    completed, _ = run_cli("transfer", str(inputs["state"]), *classes, "-o", str(tmp_path / "o.png"))
    _refused(completed, "at most 256")


def test_sigint_keeps_the_best_state_written(tiny_model_files, inputs, tmp_path):
    out, state = tmp_path / "o.png", tmp_path / "s.dgpstate"
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "restore", str(inputs["photo"]), "--task", "colorize", "--json",
         "--class", "1", "--quick", "--iteration-scale", "40", "-o", str(out), "--save-state", str(state),
         *model_args(tiny_model_files)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment, cwd=REPO_ROOT,
    )
    try:
        for line in process.stdout:
            if json.loads(line).get("event") == "Step":
                break
        process.send_signal(signal.SIGINT)
        remaining, errors = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, errors
    assert "the best state so far was written" in errors
    assert '"event": "Cancelled"' in remaining
    with Image.open(out) as image:
        image.load()
        assert image.size == (30, 24)
    assert state.stat().st_size > 0
    assert not [p for p in tmp_path.iterdir() if is_temporary_name(p.name)]


def test_two_sigints_exit_130_with_no_traceback_and_no_temporary(tiny_model_files, inputs, tmp_path):
    out = tmp_path / "o.png"
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "restore", str(inputs["photo"]), "--task", "colorize", "--json",
         "--class", "1", "--quick", "--iteration-scale", "40", "-o", str(out), *model_args(tiny_model_files)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment, cwd=REPO_ROOT,
    )
    try:
        for line in process.stdout:
            if json.loads(line).get("event") == "Step":
                break
        process.send_signal(signal.SIGINT)
        time.sleep(0.05)                   # the second aborts at once, or finds the result being written
        process.send_signal(signal.SIGINT)
        _remaining, errors = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, errors
    assert "Traceback" not in errors
    assert not [p for p in tmp_path.iterdir() if is_temporary_name(p.name)]
    if out.exists():                       # the first signal may already have let the result be written
        with Image.open(out) as image:
            image.load()


def test_a_failed_frame_write_keeps_the_result(tiny_model_files, inputs, tmp_path, monkeypatch, capsys):
    import engine.imageio
    from engine.cli import main

    real_save = engine.imageio.save_image

    def frames_fail(rgb, path, **options):
        if Path(path).name.startswith("step_"):
            raise BadInputError(f"{path} cannot be written (the disk is full).")
        return real_save(rgb, path, **options)

    monkeypatch.setattr(engine.imageio, "save_image", frames_fail)
    out = tmp_path / "o.png"
    code = main(["restore", str(inputs["photo"]), "--task", "colorize", "--quick", "--iteration-scale", "0.05",
                 "--class", "1", "-o", str(out), "--frames", str(tmp_path / "frames"), *model_args(tiny_model_files)])
    errors = capsys.readouterr().err
    assert code == 0, errors
    assert errors.count("warning: no more frames are written") == 1
    with Image.open(out) as image:
        assert image.size == (30, 24)


# --------------------------------------------------------------------------------------
# The helper itself


def test_atomic_write_follows_the_umask_and_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "result.bin"
    write_bytes_atomically(target, b"first")
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()
    with pytest.raises(BadInputError, match="already exists"):
        write_bytes_atomically(target, b"second")
    assert target.read_bytes() == b"first"
    with pytest.raises(KeyboardInterrupt), atomic_open(target, overwrite=True) as stream:
        stream.write(b"half")
        raise KeyboardInterrupt
    assert target.read_bytes() == b"first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.bin"]


@pytest.mark.parametrize("suffix", [".gif", ".mp4", ".webp", ""])
def test_exported_animations_follow_the_umask(suffix, tmp_path):
    from engine.export import AnimationOptions, export_animation

    frames = [np.full((16, 16, 3), value, np.uint8) for value in (0, 128, 255)]
    path = tmp_path / f"morph{suffix}"
    for _progress in export_animation(frames, path, options=AnimationOptions(fps=10)):
        pass
    expected = (0o777 if suffix == "" else 0o666) & ~_umask()
    assert path.stat().st_mode & 0o777 == expected
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_no_overwrite_cannot_race(tmp_path, monkeypatch):
    import engine.files

    target = tmp_path / "result.bin"
    real_create = engine.files.create_temporary

    def another_process_writes_meanwhile(path):
        temporary = real_create(path)
        target.write_bytes(b"theirs")
        return temporary

    monkeypatch.setattr(engine.files, "create_temporary", another_process_writes_meanwhile)
    with pytest.raises(BadInputError, match="already exists"):
        write_bytes_atomically(target, b"mine")
    assert target.read_bytes() == b"theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.bin"]


def test_full_disk_is_one_sentence_and_no_partial(tmp_path, monkeypatch):
    import errno

    import engine.files

    def full(temporary, path, *, overwrite):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(engine.files, "move_into_place", full)
    with pytest.raises(BadInputError, match=r"result.bin cannot be written \(the disk is full\)"):
        write_bytes_atomically(tmp_path / "result.bin", b"x" * 1000)
    assert list(tmp_path.iterdir()) == []


def test_stale_temporaries_are_cleaned_only_when_recognisable_and_old(tmp_path):
    old, young = temporary_name(tmp_path / "a.png"), temporary_name(tmp_path / "b.png")
    lookalike = tmp_path / ".a.png.tmp"
    for path in (old, young, lookalike):
        path.write_bytes(b"x")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    os.utime(lookalike, (an_hour_ago, an_hour_ago))
    assert clean_stale_temporaries(tmp_path) == 1
    assert not old.exists() and young.exists() and lookalike.exists()


def test_a_crashed_run_leaves_a_temporary_that_the_next_run_cleans(inputs, tmp_path):
    crashed = temporary_name(tmp_path / "o.png")
    crashed.write_bytes(b"half a png")
    an_hour_ago = time.time() - 3600
    os.utime(crashed, (an_hour_ago, an_hour_ago))
    # The paths are fine, so the folder is tidied; the model then fails to load (one sentence, exit 2).
    completed, _ = run_cli("restore", str(inputs["photo"]), "--task", "colorize", "-o", str(tmp_path / "o.png"),
                           "--model", str(tmp_path / "missing-G.pth"), "--discriminator", str(tmp_path / "D.pth"))
    assert completed.returncode == 2, completed.stderr
    assert not crashed.exists()


def test_check_output_refuses_a_read_only_folder(tmp_path, monkeypatch):
    import errno

    import engine.files

    def read_only(path):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(engine.files, "create_temporary", read_only)
    with pytest.raises(BadInputError, match="read-only"):
        check_output(tmp_path / "o.png", option="-o")
