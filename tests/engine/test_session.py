"""Session files (.dgps): round trips with embedded and cached states, moved photos, broken files."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.api import Engine, MorphRenderer, RestoreRequest, load_model
from engine.cache import StateCache
from engine.checksums import sha256_file
from engine.composite import RegionOfInterest
from engine.errors import BadInputError
from engine.session import (
    MANIFEST_NAME,
    SESSION_FORMAT_VERSION,
    HistoryItem,
    MorphTimeline,
    ResultJob,
    Session,
    TaskSettings,
    load_session,
    load_session_photo,
    load_states,
    save_session,
    session_image,
)
from tests.conftest import make_tiny_biggan

pytestmark = pytest.mark.timeout(120)

KEY_A = "a" * 64
KEY_B = "b" * 64


def make_photo(width: int = 60, height: int = 44) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width]
    image = np.stack([xs * 255 / width, ys * 255 / height, (xs * 3 + ys) % 255], axis=-1)
    return image.astype(np.uint8)


def largest_difference(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.max(np.abs(a.astype(int) - b.astype(int))))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def engine(one_thread) -> Engine:
    return Engine(load_model(make_tiny_biggan()), device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return make_photo()


@pytest.fixture(scope="module")
def painted(photo) -> np.ndarray:
    mask = np.zeros(photo.shape[:2], np.uint8)
    mask[10:20, 12:30] = 1
    return mask


@pytest.fixture(scope="module")
def restores(engine, photo, painted):
    """Two quick inpaintings of the photo, classes 1 and 4, and the jobs that made them."""
    made = []
    for class_index in (1, 4):
        job = ResultJob(
            task="inpaint",
            roi=(8, 0, 44),
            mask=painted,
            class_index=class_index,
            quick=True,
            seed=class_index,
            iteration_scale=0.05,
        )
        request = RestoreRequest(
            image=photo,
            task=job.task,
            roi=RegionOfInterest(*job.roi),
            mask=painted.astype(np.float32),
            class_index=class_index,
            quick=True,
            seed=job.seed,
            iteration_scale=job.iteration_scale,
        )
        made.append((list(engine.restore(request))[-1].result, job))
    return made


def item_for(result, job, *, edit: str = "", cache_key: str | None = None) -> HistoryItem:
    return HistoryItem(
        composite=result.image if result.composite is None else result.composite,
        image=result.image,
        task=result.task,
        class_index=result.class_index,
        class_name=f"class {result.class_index}",
        seconds=result.seconds,
        cancelled=result.cancelled,
        finished_at=1_700_000_000.5,
        edit=edit,
        preset=result.preset,
        top_classes=result.top_classes,
        losses=result.losses,
        steps_done=result.steps_done,
        total_steps=result.total_steps,
        notes=result.notes,
        degraded=result.degraded,
        target=result.target,
        job=job,
        state=result.state,
        cache_key=cache_key,
    )


@pytest.fixture(scope="module")
def history(engine, restores, photo, painted):
    """Two restores, a jitter of the first and a class transfer of the second (edits share weights)."""
    (first, first_job), (second, second_job) = restores
    jittered = engine.jitter_states(first.state, sigma=0.6, count=3, seed=5)[2]
    transferred = engine.transferred_state(second.state, 7)
    return (
        item_for(first, first_job, cache_key=KEY_A),
        item_for(second, second_job, cache_key=KEY_B),
        item_for(engine.edited_result(first, jittered), first_job, edit="jitter σ 0.60 #3"),
        item_for(engine.edited_result(second, transferred), second_job, edit="→ class 7"),
    )


def make_session(photo, painted, history, image) -> Session:
    return Session(
        image=image,
        roi=(6, 0, 44),
        settings=TaskSettings(
            task="hybrid",
            sr_factor=8,
            hybrid_grayscale=False,
            hybrid_sr=True,
            preset="quick",
            quick=False,
            seed=17,
            iteration_scale=0.5,
        ),
        mask=painted,
        class_index=4,
        history=history,
        selected=2,
        timeline=MorphTimeline(
            keyframes=(0, 2, 1),
            easing=("ease-in", "linear"),
            frames=12,
            fps=30,
            loop=False,
            ping_pong=True,
            position=0.25,
        ),
    )


def rounded_to_float16(state):
    return replace(
        state, weight_delta={key: value.half().float() for key, value in state.weight_delta.items()}
    )


def write_png(path: Path, rgb: np.ndarray) -> Path:
    Image.fromarray(rgb).save(path)
    return path


def rewrite(
    path: Path, *, replace_members: dict[str, bytes | None] | None = None, add: dict[str, bytes] | None = None
) -> None:
    """Rewrite a zip with some members replaced or dropped (None) and others added."""
    replace_members = replace_members or {}
    with zipfile.ZipFile(path) as source:
        members = [(info.filename, source.read(info.filename)) for info in source.infolist()]
    with zipfile.ZipFile(path, "w") as target:
        for name, data in members:
            if name in replace_members:
                if replace_members[name] is None:
                    continue
                data = replace_members[name]
            target.writestr(name, data)
        for name, data in (add or {}).items():
            target.writestr(name, data)


def manifest_of(path: Path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read(MANIFEST_NAME))


@pytest.fixture
def embedded_session(tmp_path, photo, painted, history) -> tuple[Path, Session]:
    image, note = session_image(photo, name="pasted image")
    assert note is None and image.data is not None and image.path is None
    session = make_session(photo, painted, history, image)
    saved = save_session(tmp_path / "project.dgps", session, embed_states=True)
    assert (saved.states_in_file, saved.states_in_cache, saved.states_left_out) == (4, 0, 0)
    return saved.path, session


# -------------------------------------------------------------- round trips


def test_a_round_trip_with_embedded_states_restores_everything(embedded_session, engine, photo, tmp_path):
    path, original = embedded_session
    opened = load_session(path)

    assert opened.image.data == original.image.data and opened.image.name == "pasted image"
    assert (opened.image.width, opened.image.height) == (photo.shape[1], photo.shape[0])
    assert np.array_equal(opened.mask, original.mask) and opened.mask.dtype == np.uint8
    assert opened.roi == original.roi and opened.settings == original.settings
    assert opened.class_index == 4 and opened.selected == 2 and opened.timeline == original.timeline
    assert opened.created_at and opened.modified_at and opened.app_version
    assert len(opened.history) == 4
    for before, after in zip(original.history, opened.history):
        for role in ("composite", "image", "degraded", "target"):
            assert np.array_equal(getattr(before, role), getattr(after, role)), role
        for name in (
            "task",
            "class_index",
            "class_name",
            "cancelled",
            "finished_at",
            "edit",
            "preset",
            "steps_done",
            "total_steps",
            "notes",
        ):
            assert getattr(before, name) == getattr(after, name), name
        assert after.seconds == pytest.approx(before.seconds)
        assert tuple(before.top_classes) == after.top_classes
        assert after.losses == pytest.approx(dict(before.losses))
        assert after.state is None and after.stored_state is not None
        for name in (
            "task",
            "roi",
            "sr_factor",
            "grayscale",
            "class_index",
            "preset",
            "quick",
            "seed",
            "iteration_scale",
        ):
            assert getattr(before.job, name) == getattr(after.job, name), name
        assert np.array_equal(before.job.mask, after.job.mask)
    with zipfile.ZipFile(path) as archive:  # the four results used one mask: stored once
        assert len([name for name in archive.namelist() if name.startswith("masks/")]) == 1

    folder = tmp_path / "extracted"
    folder.mkdir()
    loaded = load_states(path, opened, folder)
    assert loaded.notes == ()
    states = loaded.states
    # The edits share their parent's weights again, as before saving.
    assert states[2].weight_delta is states[0].weight_delta
    assert states[3].weight_delta is states[1].weight_delta
    assert states[0].weight_delta is not states[1].weight_delta
    for before, after in zip(original.history, states):
        assert torch.equal(before.state.z, after.z) and after.class_index == before.state.class_index
        assert torch.equal(before.state.class_embedding, after.class_embedding)
        expected = rounded_to_float16(before.state)  # deltas are kept as the result cache keeps them
        assert set(after.weight_delta) == set(expected.weight_delta)
        assert all(torch.equal(after.weight_delta[k], v) for k, v in expected.weight_delta.items())

    # Jitter, transfer and morph from the reopened states give the images of the saved ones.
    reference = [rounded_to_float16(item.state) for item in original.history]
    jitter_after = engine.jitter(states[0], sigma=0.5, count=3, seed=9)
    jitter_reference = engine.jitter(reference[0], sigma=0.5, count=3, seed=9)
    assert all(np.array_equal(a, b) for a, b in zip(jitter_after, jitter_reference))
    jitter_in_memory = engine.jitter(original.history[0].state, sigma=0.5, count=3, seed=9)
    assert all(largest_difference(a, b) <= 1 for a, b in zip(jitter_after, jitter_in_memory))
    assert np.array_equal(engine.transfer(states[3], 2), engine.transfer(reference[3], 2))
    morph_after = MorphRenderer(engine, states[0], states[2]).render(0.5)
    morph_reference = MorphRenderer(engine, reference[0], reference[2]).render(0.5)
    assert np.array_equal(morph_after, morph_reference)
    assert largest_difference(engine.render(states[2]), original.history[2].image) <= 1
    # Only the embedded members were extracted, and only into the given folder.
    assert sorted(p.name for p in folder.rglob("*") if p.is_file()) == ["state.safetensors"] * 4


def test_saving_again_keeps_the_creation_time_and_replaces_the_file_only_when_asked(
    embedded_session, tmp_path
):
    path, _ = embedded_session
    opened = load_session(path)
    with pytest.raises(BadInputError, match="already exists"):
        save_session(path, opened, embed_states=False)
    folder = tmp_path / "extracted"
    folder.mkdir()
    states = load_states(path, opened, folder).states
    again = replace(
        opened, history=tuple(replace(item, state=state) for item, state in zip(opened.history, states))
    )
    save_session(path, again, embed_states=True, overwrite=True)
    assert manifest_of(path)["created_at"] == opened.created_at
    assert sorted(p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")) == []


def test_without_embedding_the_states_come_back_from_the_result_cache(
    tmp_path, engine, photo, painted, history, restores
):
    image, _ = session_image(photo, name="pasted image")
    without_key = replace(history[1], cache_key=None)
    session = make_session(photo, painted, (history[0], without_key, history[2], history[3]), image)
    saved = save_session(tmp_path / "light.dgps", session, embed_states=False)
    # The first restore (and its jitter) point into the cache; the second had no key: images only.
    assert (saved.states_in_file, saved.states_in_cache, saved.states_left_out) == (0, 2, 2)
    light = tmp_path / "light.dgps"
    embedded_size = save_session(tmp_path / "full.dgps", session, embed_states=True).path.stat().st_size
    assert light.stat().st_size < embedded_size / 2

    opened = load_session(light)
    # The second restore was a keyframe; without its state it could not be morphed, so it was dropped.
    assert opened.timeline == replace(session.timeline, keyframes=(0, 2), easing=("ease-in",))

    cache = StateCache(tmp_path / "cache", max_bytes=1 << 30)
    folder = tmp_path / "extracted"
    folder.mkdir()
    missing = load_states(light, opened, folder, cache=cache)
    assert missing.states == (None, None, None, None)
    assert (
        len(missing.notes) == 1 and "4 of 4 results" in missing.notes[0] and "light.dgps" in missing.notes[0]
    )

    first_result, _ = restores[0]
    cache.put(KEY_A, first_result)
    found = load_states(light, opened, folder, cache=cache)
    first, second, jittered, transferred = found.states
    assert second is None and transferred is None and "2 of 4 results" in found.notes[0]
    assert jittered.weight_delta is first.weight_delta
    assert torch.equal(first.z, first_result.state.z) and torch.equal(jittered.z, history[2].state.z)
    reference = rounded_to_float16(history[2].state)
    assert np.array_equal(
        engine.jitter(jittered, sigma=0.4, count=2, seed=1),
        engine.jitter(reference, sigma=0.4, count=2, seed=1),
    )

    # "Run again" replaced the cached restore with another result: it is not mistaken for the saved one.
    cache.put(KEY_A, restores[1][0])
    assert load_states(light, opened, folder, cache=cache).states == (None, None, None, None)


# -------------------------------------------------------------- the photo


def test_a_referenced_photo_is_used_while_unchanged_and_a_moved_one_is_named(
    tmp_path, photo, painted, history
):
    original = write_png(tmp_path / "holiday.png", photo)
    image, note = session_image(photo, name=original.name, path=original, sha256=sha256_file(original))
    assert note is None and image.data is None and image.path == str(original)
    path = save_session(
        tmp_path / "referenced.dgps", make_session(photo, painted, history, image), embed_states=False
    ).path
    with zipfile.ZipFile(path) as archive:
        assert not any(name.startswith("image/") for name in archive.namelist())
    folder = tmp_path / "scratch"
    folder.mkdir()
    opened = load_session(path)
    used = load_session_photo(path, opened, folder)
    assert used.path == original and used.note is None and np.array_equal(used.rgb, photo)

    original.rename(tmp_path / "moved.png")
    with pytest.raises(BadInputError) as moved:
        load_session_photo(path, opened, folder)
    message = str(moved.value)
    assert str(original) in message and "moved or changed" in message and "no copy" in message
    assert message.count(". ") == 0 and message.endswith(".")  # one sentence

    write_png(original, 255 - photo)  # same name, other pixels
    with pytest.raises(BadInputError, match="moved or changed"):
        load_session_photo(path, opened, folder)
    assert list(folder.iterdir()) == []


def test_an_embedded_photo_keeps_the_files_bytes_and_stands_in_for_a_moved_original(
    tmp_path, photo, painted, history
):
    original = tmp_path / "holiday.jpg"
    Image.fromarray(photo).save(original, quality=90)
    opened_pixels = np.asarray(Image.open(original).convert("RGB"))
    image, note = session_image(
        opened_pixels, name=original.name, path=original, sha256=sha256_file(original), embed=True
    )
    assert note is None and image.data == original.read_bytes() and image.suffix == ".jpg"
    path = save_session(
        tmp_path / "travels.dgps", make_session(photo, painted, history, image), embed_states=True
    ).path
    with zipfile.ZipFile(path) as archive:
        assert archive.read("image/original.jpg") == original.read_bytes()  # never re-encoded

    folder = tmp_path / "scratch"
    folder.mkdir()
    session = load_session(path)
    assert load_session_photo(path, session, folder).path == original
    original.unlink()
    used = load_session_photo(path, session, folder)
    assert used.path is None and np.array_equal(used.rgb, opened_pixels)
    assert str(original) in used.note and "travels.dgps" in used.note and "copy" in used.note
    assert [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()] == [
        "image/original.jpg"
    ]


def test_a_photo_changed_since_it_was_opened_is_embedded_as_its_opened_pixels(tmp_path, photo):
    original = write_png(tmp_path / "holiday.png", photo)
    digest = sha256_file(original)
    write_png(original, 255 - photo)
    image, note = session_image(photo, name="holiday.png", path=original, sha256=digest, embed=True)
    assert str(original) in note and image.suffix == ".png"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(image.data))), photo)


# --------------------------------------------------------- hostile and broken


@pytest.mark.parametrize(
    "name",
    ["../escaped.txt", "history/../../escaped.txt", "/tmp/escaped.txt", "C:/escaped.txt", "..\\escaped.txt"],
)
def test_a_member_name_leading_out_of_the_folder_refuses_the_whole_file(embedded_session, tmp_path, name):
    path, _ = embedded_session
    rewrite(path, add={name: b"written outside"})
    before = sorted(p for p in tmp_path.rglob("*"))
    with pytest.raises(BadInputError) as refused:
        load_session(path)
    assert str(path) in str(refused.value) and repr(name) in str(refused.value)
    assert sorted(p for p in tmp_path.rglob("*")) == before
    assert not (tmp_path.parent / "escaped.txt").exists() and not Path("/tmp/escaped.txt").exists()


def test_a_member_that_would_unpack_to_an_absurd_size_is_refused_before_anything_is_read(embedded_session):
    path, _ = embedded_session
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("history/0/padding.bin", bytes(64 << 20))  # 64 MiB of zeros: about 64 KiB deflated
    with pytest.raises(BadInputError) as refused:
        load_session(path)
    assert str(path) in str(refused.value) and "history/0/padding.bin" in str(refused.value)
    assert "compressed" in str(refused.value)


def test_a_manifest_pointing_at_a_missing_member_is_refused(embedded_session):
    path, _ = embedded_session
    rewrite(path, replace_members={"history/1/state.safetensors": None})
    with pytest.raises(BadInputError, match="history entry 2's state's member .* lacks"):
        load_session(path)


def test_states_are_only_ever_extracted_below_the_given_folder(embedded_session, tmp_path):
    path, _ = embedded_session
    session = load_session(path)
    escaping = replace(session.history[0].stored_state, member="../outside.safetensors")
    hostile = replace(session, history=(replace(session.history[0], stored_state=escaping),))
    folder = tmp_path / "extracted"
    folder.mkdir()
    with pytest.raises(BadInputError, match="climbs out"):
        load_states(path, hostile, folder)
    assert not (tmp_path / "outside.safetensors").exists() and list(folder.iterdir()) == []


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        ("truncated", "truncated or corrupt"),
        ("flipped byte", "truncated or corrupt (Bad CRC-32 for file 'history/0/composite.png')"),
        ("not a zip", "is not a dgp-studio session or is truncated"),
        ("empty", "is not a dgp-studio session or is truncated"),
        ("no manifest", "session.json is missing"),
        ("manifest not json", "session.json is not valid JSON"),
        ("wrong format", "is not a dgp-studio session."),
    ],
)
def test_a_broken_file_is_refused_in_one_sentence_naming_it(embedded_session, damage, said):
    path, _ = embedded_session
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flipped byte":
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("history/0/composite.png")
        offset = (
            info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + info.compress_size // 2
        )
        path.write_bytes(data[:offset] + bytes([data[offset] ^ 0xFF]) + data[offset + 1 :])
    elif damage == "not a zip":
        path.write_text("this is a text file\n")
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "no manifest":
        rewrite(path, replace_members={MANIFEST_NAME: None})
    elif damage == "manifest not json":
        rewrite(path, replace_members={MANIFEST_NAME: b"{not json"})
    else:
        rewrite(path, replace_members={MANIFEST_NAME: json.dumps({"format": "something else"}).encode()})
    with pytest.raises(BadInputError) as refused:
        load_session(path)
    assert str(refused.value).startswith(str(path)) and said in str(refused.value)


def test_a_session_from_a_newer_format_asks_for_an_update(embedded_session):
    path, _ = embedded_session
    manifest = manifest_of(path)
    manifest["version"] = SESSION_FORMAT_VERSION + 1
    rewrite(path, replace_members={MANIFEST_NAME: json.dumps(manifest).encode()})
    with pytest.raises(BadInputError, match="newer dgp-studio .* update dgp-studio"):
        load_session(path)


@pytest.mark.parametrize(
    "change",
    [
        ("roi", [40, 0, 44]),
        ("selected", 9),
        ("settings", {"task": "paint"}),
    ],
)
def test_malformed_content_is_refused(embedded_session, change):
    path, _ = embedded_session
    manifest = manifest_of(path)
    key, value = change
    manifest[key] = {**manifest[key], **value} if isinstance(value, dict) else value
    rewrite(path, replace_members={MANIFEST_NAME: json.dumps(manifest).encode()})
    with pytest.raises(BadInputError, match="cannot be opened"):
        load_session(path)


# ------------------------------------------------------------- safe writing


def test_a_failed_save_leaves_the_previous_file_and_no_leftovers(embedded_session, monkeypatch):
    path, session = embedded_session
    before = path.read_bytes()
    from engine.state import GeneratorState

    def broken_save(self, target, **_options):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(GeneratorState, "save", broken_save)
    with pytest.raises(BadInputError, match="cannot be written .*disk is full"):
        save_session(path, session, embed_states=True, overwrite=True)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_the_session_is_never_written_over_its_photo(tmp_path, photo, painted, history):
    original = write_png(tmp_path / "holiday.png", photo)
    before = original.read_bytes()
    image, _ = session_image(photo, name=original.name, path=original, sha256=sha256_file(original))
    with pytest.raises(BadInputError, match="is the session's photo"):
        save_session(
            original, make_session(photo, painted, history, image), embed_states=False, overwrite=True
        )
    assert original.read_bytes() == before


def test_the_module_imports_neither_torch_nor_the_model_code():
    import subprocess
    import sys

    script = (
        "import sys, engine.session; print(sorted(m for m in ('torch', 'engine.api', 'engine.state', "
        "'engine.imageio', 'engine.export', 'av') if m in sys.modules))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.strip() == "[]"
