"""The evaluation harness end to end on a tiny tar and a tiny random 64 px model."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from engine import evaluate
from engine.api import load_model
from engine.biggan import BigGANConfig, Discriminator, Generator, orthogonal_init_
from engine.degrade import centered_square_mask
from engine.errors import BadInputError
from engine.metrics import hole_region
from engine.models import save_biggan_safetensors
from engine.schedule import Schedule

# Three classes the model knows (ImageNet indices 1, 25, 30) and one it does not (99).
CLASSES = [
    {"wnid": "n01443537", "imagenet_index": 1, "name": "goldfish"},
    {"wnid": "n01629819", "imagenet_index": 25, "name": "European fire salamander"},
    {"wnid": "n01641577", "imagenet_index": 30, "name": "bullfrog"},
    {"wnid": "n01855672", "imagenet_index": 99, "name": "goose"},
]


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from threads, and on a busy machine threads make them crawl."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def tiny_config() -> BigGANConfig:
    # Attention at 16 px: G has 8·8 = 64 channels there and D 2·8 = 16, both ≥ 8 as
    # attention's channels // 8 needs.
    return BigGANConfig(
        resolution=64, g_ch=8, d_ch=8, n_classes=3, g_attention=(16,), d_attention=(16,),
        class_names=tuple(c["name"] for c in CLASSES[:3]),
        class_imagenet_indices=tuple(c["imagenet_index"] for c in CLASSES[:3]),
    )


def tiny_pair() -> tuple[Generator, Discriminator]:
    config = tiny_config()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        generator, discriminator = Generator(config), Discriminator(config)
        orthogonal_init_(generator)
        orthogonal_init_(discriminator)
    return generator.eval(), discriminator.eval()


def photo(seed: int) -> np.ndarray:
    """A 64×64 colourful test photo: gradients, a disc and a little noise."""
    rng = np.random.default_rng(seed)
    ys, xs = np.meshgrid(np.linspace(0, 1, 64), np.linspace(0, 1, 64), indexing="ij")
    centre = rng.random(2)
    disc = ((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2 < 0.06).astype(float)
    image = np.stack([xs, ys * (1 - disc) + disc, 0.5 + 0.4 * np.sin(8 * xs + seed)], axis=-1)
    image = image + rng.normal(0, 0.03, image.shape)
    return np.clip(np.round(image * 255), 0, 255).astype(np.uint8)


@pytest.fixture()
def validation_tar(tmp_path):
    """val.tar with two JPEGs per class (one class unknown to the model) and classes.json beside it."""
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "classes.json").write_text(json.dumps(CLASSES))
    tar_path = folder / "val.tar"
    with tarfile.open(tar_path, "w") as archive:
        for class_number, entry in enumerate(CLASSES):
            for index in range(2):
                buffer = io.BytesIO()
                Image.fromarray(photo(10 * class_number + index)).save(buffer, format="JPEG", quality=95)
                info = tarfile.TarInfo(f"{entry['wnid']}/val_{10 * class_number + index}.JPEG")
                info.size = buffer.tell()
                buffer.seek(0)
                archive.addfile(info, buffer)
    return tar_path


def shrink(schedule: Schedule) -> Schedule:
    """Two stages of one iteration each and two latent candidates: seconds, not minutes."""
    stages = tuple(dataclasses.replace(stage, iterations=1) for stage in schedule.stages[:2])
    return dataclasses.replace(schedule, stages=stages, search_candidates=2)


def read_lines(out_dir) -> list[dict]:
    return [json.loads(line) for line in (out_dir / "results.jsonl").read_text().splitlines()]


def expected_runs(images: int) -> int:
    per_image = sum(
        len(evaluate.DGP_METHODS) + len(spec.baselines) for spec in evaluate.TASK_SPECS.values()
    )
    return images * per_image


def test_quick_evaluation_end_to_end_and_resume(validation_tar, tmp_path, monkeypatch):
    model = load_model(tiny_pair())
    out_dir = tmp_path / "report"
    options = dict(
        data=validation_tar, out_dir=out_dir, limit=2, seed=3, quick=True, device="cpu", precision="fp32",
        adjust_schedule=shrink, command="pytest quick evaluation", progress=False,
    )
    records = evaluate.run_evaluation(model, **options)

    lines = read_lines(out_dir)
    assert len(lines) == len(records) == expected_runs(2)
    keys = {(r["image"], r["task"], r["method"]) for r in lines}
    assert len(keys) == len(lines)
    # Only classes the model knows are sampled, and labels map to the model's positions.
    position = {c["wnid"]: i for i, c in enumerate(CLASSES[:3])}
    for record in lines:
        assert record["class_index"] == position[record["image"].split("/")[0]]
        assert set(record["metrics"]) >= {"psnr", "ssim", "mse", "ssim_range2"}
        assert (out_dir / record["result_png"]).is_file()
    assert all("chroma" in r["metrics"] for r in lines if r["task"] == "colorize")

    # z_only never changes G; the published preset does.
    z_only = [r for r in lines if r["method"] == "z_only"]
    assert z_only and all(r["g_changed_tensors"] == 0 for r in z_only)
    assert all(r["g_changed_tensors"] > 0 for r in lines if r["method"] in ("dgp", "random_g"))
    # The inpainting preset unlocks every group from stage 1, so dgp_d_all is dgp's twin.
    twins = [r for r in lines if r["task"] == "inpaint" and r["method"] == "dgp_d_all"]
    assert all(r["identical_to"] == "dgp" for r in twins)
    assert not any("identical_to" in r for r in lines if r["task"] == "sr4")
    # Baselines keep the known pixels, so outside the hole they are exact.
    fill = next(r for r in lines if r["method"] == "harmonic_fill")
    truth = np.asarray(Image.open(out_dir / "images" / "truth" / f"{fill['image_id']}.png"))
    filled = np.asarray(Image.open(out_dir / fill["result_png"]))
    known = centered_square_mask(64, 64)[0, 0].numpy() > 0
    np.testing.assert_array_equal(filled[known], truth[known])

    # Generative SR results are matched to their low-resolution input (the raw G output is
    # scored too); baselines are left as they are.
    for record in lines:
        if record["task"] == "sr4" and record["method"] in evaluate.DGP_METHODS:
            truth = np.asarray(Image.open(out_dir / "images" / "truth" / f"{record['image_id']}.png"))
            low = np.asarray(Image.fromarray(truth).resize((16, 16), Image.Resampling.LANCZOS))
            result = np.asarray(Image.open(out_dir / record["result_png"]))
            shrunk = np.asarray(Image.fromarray(result).resize((16, 16), Image.Resampling.LANCZOS))
            assert np.abs(shrunk.astype(int) - low).mean() < 1.5
            assert record["metrics"]["psnr"] >= record["metrics_generator"]["psnr"] - 0.05
        else:
            assert "metrics_generator" not in record

    # The report: one table per task with a row for every method that task runs.
    report = (out_dir / "evaluation.md").read_text()
    projection_note = next(line for line in report.splitlines() if "before that projection:" in line)
    assert all(f"`{m}` " in projection_note for m in evaluate.DGP_METHODS)
    assert "pytest quick evaluation" in report and "data_range = 1" in report
    sections = report.split("\n## ")
    for task, spec in evaluate.TASK_SPECS.items():
        section = next(s for s in sections if f"(`{task}`)" in s.splitlines()[0])
        for method in evaluate.DGP_METHODS + spec.baselines:
            row = next(line for line in section.splitlines() if line.startswith(f"| `{method}` |"))
            assert row.rstrip().endswith("|") and "| 2 |" in row
        paired = section.split("`dgp` higher on |", 1)[1]
        for method in evaluate.DGP_METHODS + spec.baselines:
            if method == "dgp" or (task == "inpaint" and method == "dgp_d_all"):   # dgp's twin: left out
                assert f"| `{method}` |" not in paired
            else:
                assert f"| `{method}` |" in paired and " of 2 |" in paired
        with Image.open(out_dir / f"sheet_{task}.png") as sheet:
            # Columns: input, every method, ground truth; rows: the two images.
            assert sheet.width > (len(evaluate.DGP_METHODS) + len(spec.baselines) + 2) * 64
            assert 2 * 64 < sheet.height < 3 * 64 + 100

    # A rerun with the same settings does no work at all...
    def no_dgp(*args, **kwargs):
        raise AssertionError("a finished run was repeated")

    monkeypatch.setattr(evaluate, "run_dgp", no_dgp)
    assert len(evaluate.run_evaluation(model, **options)) == expected_runs(2)
    assert read_lines(out_dir) == lines
    monkeypatch.undo()

    # ...a larger limit extends the same sample with only the new image's runs...
    grown = evaluate.run_evaluation(model, **{**options, "limit": 3, "tasks": ["inpaint"],
                                              "methods": ["z_only", "mean_fill"]})
    new = read_lines(out_dir)[len(lines):]
    assert len(grown) == len(new) + len(lines) and len(new) == 2
    assert {r["method"] for r in new} == {"z_only", "mean_fill"}
    assert len({r["image"] for r in new} | {r["image"] for r in lines}) == 3

    # ...and different settings are refused instead of being mixed in.
    with pytest.raises(BadInputError, match="seed"):
        evaluate.run_evaluation(model, **{**options, "seed": 4})
    # Results written before generative SR results were assembled at a detail strength neither.
    older = [{**r, "run": {k: v for k, v in r["run"].items() if k != "sr_detail_strength"}}
             for r in read_lines(out_dir)]
    (out_dir / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in older))
    with pytest.raises(BadInputError, match="sr_detail_strength = None"):
        evaluate.run_evaluation(model, **options)


def saved_model_options(folder) -> list[str]:
    """Write the tiny pair to ``folder``; the command-line options that load it, on the CPU in fp32."""
    generator, discriminator = tiny_pair()
    config = tiny_config()
    save_biggan_safetensors(generator, folder / "G.safetensors", config, dtype=torch.float32)
    save_biggan_safetensors(discriminator, folder / "D.safetensors", config, dtype=torch.float32)
    return ["--model", str(folder / "G.safetensors"), "--discriminator", str(folder / "D.safetensors"),
            "--device", "cpu", "--precision", "fp32"]


def test_command_line_with_a_saved_model(validation_tar, tmp_path, capsys):
    out_dir = tmp_path / "cli-report"
    argv = [
        "--data", str(validation_tar), "--tasks", "sr4", "--methods", "bicubic,lanczos,z_only",
        "--limit", "1", "--quick", "--iteration-scale", "0.1", *saved_model_options(tmp_path),
        "--out", str(out_dir),
    ]
    assert evaluate.main(argv) == 0
    lines = read_lines(out_dir)
    assert sorted(r["method"] for r in lines) == ["bicubic", "lanczos", "z_only"]
    z_only = next(r for r in lines if r["method"] == "z_only")
    # Quick (×0.05) then ×0.1 leaves one iteration per stage of the 5-stage preset.
    assert z_only["iterations"] == 5 and z_only["g_changed_tensors"] == 0
    report = (out_dir / "evaluation.md").read_text()
    assert "dgp-studio evaluate --data" in report and "--iteration-scale 0.1" in report
    # Upsampling a smooth photo from its ×4 Lanczos downsampling comes close to it.
    lanczos = next(r for r in lines if r["method"] == "lanczos")
    assert lanczos["metrics"]["psnr"] > 20

    assert evaluate.main([*argv[:5], "gray_input,nonsense", *argv[6:]]) == 2
    assert "nonsense" in capsys.readouterr().err


def test_a_chosen_preset_is_run_recorded_and_guards_resuming(validation_tar, tmp_path, capsys):
    out_dir = tmp_path / "preset-report"
    argv = [
        "--data", str(validation_tar), "--tasks", "sr4", "--methods", "z_only", "--limit", "1",
        "--quick", "--iteration-scale", "0.1", *saved_model_options(tmp_path), "--out", str(out_dir),
    ]
    assert evaluate.main([*argv, "--preset", "sr4=builtin64_sr_d_biased"]) == 0
    (record,) = read_lines(out_dir)
    assert record["preset"].startswith("builtin64_sr_d_biased")
    assert record["run"]["presets"] == {"sr4": "builtin64_sr_d_biased"}
    assert "Preset: `builtin64_sr_d_biased (quick)`" in (out_dir / "evaluation.md").read_text()

    # Resuming the folder with the default preset would mix two schedules in one table.
    capsys.readouterr()
    assert evaluate.main(argv) == 2
    assert "presets" in capsys.readouterr().err

    for bad, words in [
        ("sr4", "expected TASK=NAME"),
        ("sr8=builtin64_sr_mse_biased", "unknown task"),
        ("sr4=builtin64_inpaint", "inpaint task"),
        ("inpaint=builtin64_inpaint", "not among the evaluated tasks"),
        ("sr4=no_such_preset", "no_such_preset"),
    ]:
        assert evaluate.main([*argv[:-1], str(tmp_path / "other"), "--preset", bad]) == 2
        error = capsys.readouterr().err
        assert words in error and error.count("\n") == 1, error


def test_shards_split_the_sample_and_the_last_report_covers_all(validation_tar, tmp_path):
    model = load_model(tiny_pair())
    out_dir = tmp_path / "sharded"
    options = dict(
        data=validation_tar, out_dir=out_dir, limit=3, seed=3, quick=True, device="cpu", precision="fp32",
        tasks=["inpaint"], methods=["z_only", "mean_fill"], adjust_schedule=shrink, progress=False,
    )
    first = evaluate.run_evaluation(model, shard=(1, 2), **options)
    first_file = out_dir / "results.shard-1-of-2.jsonl"
    assert not (out_dir / "results.jsonl").exists()
    assert len({r["image"] for r in first}) == 2      # images 1 and 3 of the sample
    # Shard 2 is still writing its last line when shard 1 looks: shard 1 leaves it alone.
    second_file = out_dir / "results.shard-2-of-2.jsonl"
    second_file.write_text('{"image": "half a line')
    evaluate.read_all_results(out_dir, own=first_file)
    assert second_file.read_text() == '{"image": "half a line'
    second_file.unlink()

    every = evaluate.run_evaluation(model, shard=(2, 2), **options)
    assert len(every) == 6 and len({r["image"] for r in every}) == 3
    assert len(evaluate.read_results(second_file)) == 2
    report = (out_dir / "evaluation.md").read_text()
    assert "one of 2 processes that split the sample with `--shard K/2`" in report
    section = report.split("\n## ")[-1]
    assert "| 3 |" in next(line for line in section.splitlines() if line.startswith("| `z_only` |"))
    # The sample is the unsharded one: an unsharded rerun finds everything done.
    assert len(evaluate.run_evaluation(model, **options)) == 6 and not (out_dir / "results.jsonl").exists()

    for bad in ("0/2", "3/2", "1", "a/b"):
        with pytest.raises(BadInputError, match="K/N"):
            evaluate.parse_shard(bad)


def test_a_shard_rewrites_the_report_when_another_appended_meanwhile(tmp_path, monkeypatch):
    # Shard 2 appends its last record after shard 1 read the folder but before shard 1 wrote.
    every = [{"image": f"w/{index}.JPEG", "task": "inpaint", "method": "mean_fill"} for index in range(3)]
    views = iter([every[:2], every, every])
    written = []
    monkeypatch.setattr(evaluate, "read_all_results", lambda out_dir, own=None: next(views))
    monkeypatch.setattr(evaluate, "write_report", lambda records, out_dir, command: written.append(len(records)))
    assert evaluate._write_report_over_every_shard(tmp_path, "cmd") == every
    assert written == [2, 3]


def test_table_cells_count_exact_results_beside_the_mean():
    assert evaluate._mean_and_std([20.0, 22.0], 1.0, 2) == "21.00 ± 1.41"
    assert evaluate._mean_and_std([20.0, 22.0, math.inf], 1.0, 2) == "21.00 ± 1.41 (and 1 × ∞)"
    assert evaluate._mean_and_std([0.002], 1e3, 3) == "2.000"
    assert evaluate._mean_and_std([math.inf, math.inf], 1.0, 2) == "∞"
    assert evaluate._mean_and_std([20.0, math.nan], 1.0, 2) == "n/a"


def test_paired_differences_match_images_and_count_wins():
    def record(image, method, psnr):
        return {"image": image, "method": method, "metrics": {"psnr": psnr}}

    records = [
        record("a", "dgp", 20.0), record("a", "z_only", 15.0),
        record("b", "dgp", 18.0), record("b", "z_only", 19.0),
        record("c", "dgp", math.inf), record("c", "z_only", math.inf),
        record("d", "dgp", 17.0),                       # z_only not finished on d
    ]
    differences = evaluate.paired_psnr_differences(records, "dgp", "z_only")
    np.testing.assert_array_equal(differences[:2], [5.0, -1.0])
    assert np.isnan(differences[2])
    lines = evaluate._paired_comparison_lines(records, ["dgp", "z_only"])
    assert lines[-1] == ("| `z_only` | +2.00 ± 5.88 (1 image(s) with an infinite PSNR left out) "
                         "| 1 of 3 |")


def test_sample_is_seeded_and_prefix_stable(validation_tar):
    model = load_model(tiny_pair())
    classes = evaluate.read_classes(validation_tar.parent / "classes.json")
    images, skipped = evaluate.list_validation_images(validation_tar, classes, model)
    assert len(images) == 6 and skipped == 2
    two = evaluate.sample_validation_images(images, limit=2, fraction=None, seed=1)
    three = evaluate.sample_validation_images(images, limit=3, fraction=None, seed=1)
    assert three[:2] == two
    assert evaluate.sample_validation_images(images, limit=None, fraction=0.5, seed=1) == three
    other = [evaluate.sample_validation_images(images, limit=6, fraction=None, seed=s) for s in range(4)]
    assert len({tuple(i.member for i in sample) for sample in other}) > 1
    with pytest.raises(BadInputError, match="--limit"):
        evaluate.sample_validation_images(images, limit=0, fraction=None, seed=1)


def test_method_schedules_change_one_factor():
    from engine.schedule import resolve_preset

    preset = resolve_preset("builtin64_sr_d_biased")
    z_only = evaluate.method_schedule("z_only", preset)
    assert all(s.g_lr == 0 and not s.use_in for s in z_only.stages)
    assert [s.z_lr for s in z_only.stages] == [s.z_lr for s in preset.stages]
    mse_only = evaluate.method_schedule("dgp_mse", preset)
    assert all(s.w_d == 0 and s.w_mse == 1 for s in mse_only.stages)
    assert [s.unlocked_groups for s in mse_only.stages] == [s.unlocked_groups for s in preset.stages]
    all_groups = evaluate.method_schedule("dgp_d_all", preset)
    assert all(s.unlocked_groups == "all" for s in all_groups.stages)
    assert [s.w_d for s in all_groups.stages] == [s.w_d for s in preset.stages]
    assert evaluate.method_schedule("dgp", preset) is preset
    assert all(s.total_iterations == preset.total_iterations for s in (z_only, mse_only, all_groups))


def test_random_generator_is_seeded_and_unlike_the_trained_one():
    model = load_model(tiny_pair())
    first = evaluate.random_generator(model, seed=5)
    again = evaluate.random_generator(model, seed=5)
    for (key, a), b in zip(first.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), key
    trained = model.G.state_dict()["blocks.0.0.conv1.weight"]
    assert not torch.equal(first.state_dict()["blocks.0.0.conv1.weight"], trained)
    with torch.no_grad():
        image = first(torch.randn(1, first.dim_z), torch.tensor([0]))
    assert torch.isfinite(image).all() and image.abs().max() <= 1


def test_fill_baselines():
    ys, xs = np.meshgrid(np.arange(32.0), np.arange(32.0), indexing="ij")
    # A linear ramp is harmonic, so filling a hole in it gives the ramp back.
    ramp = np.stack([4 * xs + 20, 3 * ys + 10, 2 * xs + 2 * ys + 30], axis=-1).astype(np.uint8)
    known = np.ones((32, 32), dtype=bool)
    rows, columns = hole_region(32, 32)
    known[rows, columns] = False
    holed = ramp.copy()
    holed[~known] = 0
    filled = evaluate.harmonic_fill(holed, known)
    assert np.abs(filled.astype(int) - ramp.astype(int)).max() <= 1
    np.testing.assert_array_equal(filled[known], ramp[known])
    mean_filled = evaluate.mean_fill(holed, known)
    expected = np.rint(ramp[known].astype(float).mean(axis=0))
    np.testing.assert_array_equal(mean_filled[~known], np.broadcast_to(expected, mean_filled[~known].shape))
    with pytest.raises(BadInputError):
        evaluate.harmonic_fill(holed, np.zeros((32, 32), dtype=bool))
