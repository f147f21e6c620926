"""The command line: a full restore → jitter → transfer → morph round, and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from engine.cli import main


@pytest.fixture()
def picture(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 255, (48, 60, 3), dtype=np.uint8)).save(path)
    return path


def model_args(files):
    return ["--model", str(files[0]), "--discriminator", str(files[1]), "--device", "cpu"]


def test_restore_then_manipulate(tiny_model_files, picture, tmp_path, capsys):
    out = tmp_path / "out.png"
    state = tmp_path / "a.dgpstate"
    before = picture.read_bytes()
    code = main(["restore", str(picture), "--task", "colorize", "--quick", "--iteration-scale", "0.1",
                 "--class", "3", "-o", str(out), "--save-state", str(state), *model_args(tiny_model_files)])
    assert code == 0, capsys.readouterr().err
    assert picture.read_bytes() == before
    with Image.open(out) as image:
        assert image.size == (60, 48)
        assert "dgp-task" in image.info
    assert state.exists()

    second_state = tmp_path / "b.dgpstate"
    code = main(["restore", str(picture), "--task", "reconstruct", "--quick", "--iteration-scale", "0.1",
                 "--seed", "2", "-o", str(tmp_path / "b.png"), "--save-state", str(second_state),
                 *model_args(tiny_model_files)])
    assert code == 0

    sheet = tmp_path / "sheet.png"
    assert main(["jitter", str(state), "--count", "4", "-o", str(sheet), *model_args(tiny_model_files)]) == 0
    with Image.open(sheet) as image:
        assert image.width > 60 and image.height > 60

    gallery = tmp_path / "gallery.png"
    assert main(["transfer", str(state), "--class", "1", "--class", "2", "-o", str(gallery),
                 *model_args(tiny_model_files)]) == 0
    assert gallery.exists()

    gif = tmp_path / "morph.gif"
    assert main(["morph", str(state), str(second_state), "--frames", "5", "-o", str(gif),
                 *model_args(tiny_model_files)]) == 0
    with Image.open(gif) as image:
        assert image.n_frames == 5


def test_json_events_and_auto_class(tiny_model_files, picture, tmp_path, capsys):
    out = tmp_path / "out.png"
    code = main(["restore", str(picture), "--task", "reconstruct", "--quick", "--iteration-scale", "0.05",
                 "--json", "-o", str(out), *model_args(tiny_model_files)])
    assert code == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    import json

    kinds = [json.loads(line)["event"] for line in lines]
    assert kinds[0] == "Started" and kinds[-1] == "Finished"
    found = next(json.loads(line) for line in lines if json.loads(line)["event"] == "SearchFinished")
    assert len(found["top_classes"]) == 5


@pytest.mark.parametrize(
    "make_args, fragment",
    [
        (lambda p, t: ["restore", str(t / "missing.jpg"), "--task", "colorize", "-o", str(t / "o.png")],
         "missing.jpg"),
        (lambda p, t: ["restore", str(_text_file(t)), "--task", "colorize", "-o", str(t / "o.png")],
         "notes.txt"),
        (lambda p, t: ["restore", str(p), "--task", "inpaint", "-o", str(t / "o.png")], "--mask"),
        (lambda p, t: ["restore", str(p), "--task", "inpaint", "--mask", str(_mask(t, (10, 10))), "-o",
                       str(t / "o.png")], "mask.png"),
        (lambda p, t: ["restore", str(p), "--task", "colorize", "--class", "zebra-unicorn", "-o",
                       str(t / "o.png")], "zebra-unicorn"),
        (lambda p, t: ["restore", str(p), "--task", "colorize", "-o", str(p)], "never overwritten"),
        (lambda p, t: ["restore", str(p), "--task", "colorize", "--roi", "1,2", "-o", str(t / "o.png")],
         "--roi"),
    ],
)
def test_bad_input_exits_2_with_one_sentence(make_args, fragment, tiny_model_files, picture, tmp_path, capsys):
    args = make_args(picture, tmp_path) + model_args(tiny_model_files)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err
    assert "Traceback" not in err and len(err.splitlines()) == 1


def test_a_generator_without_its_discriminator_is_explained(tiny_model_files, picture, tmp_path, capsys):
    code = main(["restore", str(picture), "--task", "colorize", "-o", str(tmp_path / "o.png"),
                 "--model", str(tiny_model_files[0])])
    assert code == 2
    assert "discriminator" in capsys.readouterr().err


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["restore", "--help"])
    text = capsys.readouterr().out
    for option in ("--task", "--mask", "--factor", "--class", "--model", "--preset", "--quick", "--device",
                   "--seed", "--frames", "--save-state", "--output"):
        assert option in text


def _text_file(folder):
    path = folder / "notes.txt"
    path.write_text("not an image")
    return path


def _mask(folder, size):
    path = folder / "mask.png"
    Image.fromarray(np.full(size, 255, np.uint8)).save(path)
    return path
