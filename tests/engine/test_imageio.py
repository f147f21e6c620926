"""Tests for engine.imageio: decoding every mode, refusing bad files, atomic saving, tensors."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms

from engine.errors import BadInputError
from engine.imageio import LoadedImage, load_image, load_mask, save_image
from engine.tensors import to_tensor, to_uint8


def _random_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def _s15fixed16(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _rgb_matrix_icc_profile(red_xyz, green_xyz, blue_xyz, *, gamma: float, name: str) -> bytes:
    """A minimal ICC v2 display profile (matrix + gamma curves), written byte by byte.

    Lets a test embed a profile whose effect is unmistakable (here: primaries of sRGB
    with red and green swapped) without shipping profile files.
    """

    def xyz_tag(xyz) -> bytes:
        return b"XYZ " + b"\0" * 4 + b"".join(_s15fixed16(v) for v in xyz)

    ascii_name = name.encode("ascii") + b"\0"
    description = (
        b"desc" + b"\0" * 4 + struct.pack(">I", len(ascii_name)) + ascii_name
        + struct.pack(">II", 0, 0) + struct.pack(">HB", 0, 0) + b"\0" * 67
    )
    curve = b"curv" + b"\0" * 4 + struct.pack(">I", 1) + struct.pack(">H", round(gamma * 256)) + b"\0\0"
    tags = [
        (b"desc", description),
        (b"wtpt", xyz_tag((0.9642, 1.0, 0.8249))),
        (b"rXYZ", xyz_tag(red_xyz)),
        (b"gXYZ", xyz_tag(green_xyz)),
        (b"bXYZ", xyz_tag(blue_xyz)),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, data in tags:
        data += b"\0" * (-len(data) % 4)
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = (
        struct.pack(">I4sI4s4s4s", size, b"none", 0x02100000, b"mntr", b"RGB ", b"XYZ ")
        + b"\0" * 12 + b"acsp" + b"\0" * 4 + b"\0" * 4 + b"\0" * 8 + b"\0" * 8 + b"\0" * 4
        + _s15fixed16(0.9642) + _s15fixed16(1.0) + _s15fixed16(0.8249) + b"\0" * 4 + b"\0" * 16 + b"\0" * 28
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body


# sRGB colorants adapted to D50, as in sRGB ICC profiles.
_SRGB_RED_D50 = (0.4361, 0.2225, 0.0139)
_SRGB_GREEN_D50 = (0.3851, 0.7169, 0.0971)
_SRGB_BLUE_D50 = (0.1431, 0.0606, 0.7141)


# ----------------------------------------------------------------------------- modes


def test_rgb_png_loads_exactly_with_hash_and_original_untouched(tmp_path: Path) -> None:
    pixels = _random_rgb(5, 7)
    path = tmp_path / "photo.png"
    Image.fromarray(pixels).save(path)
    before = path.read_bytes()
    loaded = load_image(path)
    assert isinstance(loaded, LoadedImage)
    np.testing.assert_array_equal(loaded.rgb, pixels)
    assert loaded.rgb.dtype == np.uint8 and loaded.rgb.flags.c_contiguous
    assert loaded.alpha is None and loaded.original_mode == "RGB"
    assert loaded.size == (7, 5)
    assert loaded.sha256 == hashlib.sha256(before).hexdigest()
    assert path.read_bytes() == before


def test_exif_orientation_6_rotates_clockwise(tmp_path: Path) -> None:
    stored = np.zeros((2, 4, 3), dtype=np.uint8)  # 4 wide, 2 high as stored
    stored[0, 0] = (255, 0, 0)  # top-left as stored
    stored[1, 3] = (0, 0, 255)  # bottom-right as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    path = tmp_path / "rotated.png"
    Image.fromarray(stored).save(path, exif=exif)
    loaded = load_image(path)
    assert loaded.rgb.shape == (4, 2, 3)
    # A clockwise quarter turn moves the stored top-left to the top-right.
    np.testing.assert_array_equal(loaded.rgb[0, 1], (255, 0, 0))
    np.testing.assert_array_equal(loaded.rgb[3, 0], (0, 0, 255))
    assert any("orientation 6" in note for note in loaded.notes)


def test_exif_orientation_in_jpeg_swaps_dimensions(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "camera.jpg"
    Image.fromarray(_random_rgb(16, 24)).save(path, exif=exif)
    assert load_image(path).rgb.shape == (24, 16, 3)


def test_cmyk_without_profile_uses_plain_conversion(tmp_path: Path) -> None:
    cmyk = Image.new("CMYK", (3, 2), (0, 255, 255, 0))  # no cyan/black, full magenta+yellow = red
    cmyk.putpixel((1, 0), (0, 0, 0, 255))  # full black
    cmyk.putpixel((2, 1), (255, 0, 255, 0))  # cyan + yellow = green
    path = tmp_path / "scan.tif"
    cmyk.save(path)
    loaded = load_image(path)
    assert loaded.original_mode == "CMYK"
    np.testing.assert_array_equal(loaded.rgb[0, 0], (255, 0, 0))
    np.testing.assert_array_equal(loaded.rgb[0, 1], (0, 0, 0))
    np.testing.assert_array_equal(loaded.rgb[1, 2], (0, 255, 0))
    assert "converted from CMYK" in loaded.notes


def test_sixteen_bit_grey_png_is_shifted_by_eight_bits(tmp_path: Path) -> None:
    samples = np.array([[0, 255, 256, 32768, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(samples).save(path)
    assert Image.open(path).mode == "I;16"
    loaded = load_image(path)
    assert loaded.original_mode == "I;16"
    expected = np.array([0, 0, 1, 128, 255], dtype=np.uint8)
    for channel in range(3):
        np.testing.assert_array_equal(loaded.rgb[0, :, channel], expected)


def test_thirty_two_bit_integer_tiff_uses_its_bit_depth(tmp_path: Path) -> None:
    samples = np.array([[0, 1 << 23, (1 << 31) - 1, -5]], dtype=np.int32)  # signed: max 2**31 - 1
    path = tmp_path / "wide.tif"
    Image.fromarray(samples).save(path)
    loaded = load_image(path)
    np.testing.assert_array_equal(loaded.rgb[0, :, 0], [0, 1, 255, 0])


def test_float_image_in_unit_range_scales_to_255(tmp_path: Path) -> None:
    path = tmp_path / "float.tif"
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32)).save(path)
    np.testing.assert_array_equal(load_image(path).rgb[0, :, 1], [0, 128, 255])


def test_float_image_with_unknown_scale_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "hdr.tif"
    Image.fromarray(np.array([[0.0, 1000.0]], dtype=np.float32)).save(path)
    with pytest.raises(BadInputError, match="hdr.tif"):
        load_image(path)


def test_palette_with_transparency_keeps_alpha_apart(tmp_path: Path) -> None:
    image = Image.new("P", (3, 1))
    image.putpalette([10, 20, 30, 200, 100, 50, 0, 0, 0] + [0] * (256 * 3 - 9))
    image.putdata([0, 1, 2])
    path = tmp_path / "logo.png"
    image.save(path, transparency=2)
    loaded = load_image(path)
    assert loaded.original_mode == "P"
    np.testing.assert_array_equal(loaded.rgb[0, 0], (10, 20, 30))
    np.testing.assert_array_equal(loaded.rgb[0, 1], (200, 100, 50))
    assert loaded.alpha is not None
    np.testing.assert_array_equal(loaded.alpha, [[255, 255, 0]])


def test_rgba_and_la_split_alpha(tmp_path: Path) -> None:
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., :3] = _random_rgb(2, 2, seed=3)
    rgba[..., 3] = [[0, 64], [128, 255]]
    path = tmp_path / "cutout.png"
    Image.fromarray(rgba, mode="RGBA").save(path)
    loaded = load_image(path)
    np.testing.assert_array_equal(loaded.rgb, rgba[..., :3])
    np.testing.assert_array_equal(loaded.alpha, rgba[..., 3])

    la = Image.merge("LA", [Image.fromarray(np.array([[7, 250]], dtype=np.uint8)),
                            Image.fromarray(np.array([[255, 9]], dtype=np.uint8))])
    la_path = tmp_path / "grey_alpha.png"
    la.save(la_path)
    loaded = load_image(la_path)
    np.testing.assert_array_equal(loaded.rgb[0], [[7, 7, 7], [250, 250, 250]])
    np.testing.assert_array_equal(loaded.alpha, [[255, 9]])


def test_grey_and_bilevel_become_rgb(tmp_path: Path) -> None:
    grey = np.array([[0, 17, 255]], dtype=np.uint8)
    path = tmp_path / "grey.png"
    Image.fromarray(grey).save(path)
    loaded = load_image(path)
    assert loaded.original_mode == "L"
    np.testing.assert_array_equal(loaded.rgb, np.repeat(grey[..., None], 3, axis=2))

    bilevel = Image.new("1", (2, 1))
    bilevel.putpixel((1, 0), 1)
    bilevel_path = tmp_path / "fax.png"
    bilevel.save(bilevel_path)
    np.testing.assert_array_equal(load_image(bilevel_path).rgb[0, :, 0], [0, 255])


def test_embedded_icc_profile_is_converted_to_srgb(tmp_path: Path) -> None:
    swapped = _rgb_matrix_icc_profile(
        _SRGB_GREEN_D50, _SRGB_RED_D50, _SRGB_BLUE_D50, gamma=2.2, name="swapped red green"
    )
    pixels = np.zeros((1, 2, 3), dtype=np.uint8)
    pixels[0, 0] = (255, 0, 0)  # "red" in a profile whose red primary is sRGB's green
    pixels[0, 1] = (255, 255, 255)
    path = tmp_path / "tagged.png"
    Image.fromarray(pixels).save(path, icc_profile=swapped)
    loaded = load_image(path)
    assert np.abs(loaded.rgb[0, 0].astype(int) - (0, 255, 0)).max() <= 3
    assert np.abs(loaded.rgb[0, 1].astype(int) - 255).max() <= 2
    assert any("ICC" in note for note in loaded.notes)


def test_srgb_profile_is_not_applied_twice(tmp_path: Path) -> None:
    pixels = _random_rgb(4, 4, seed=9)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = tmp_path / "srgb.png"
    Image.fromarray(pixels).save(path, icc_profile=srgb)
    np.testing.assert_array_equal(load_image(path).rgb, pixels)


# ----------------------------------------------------------------------------- bad inputs


def test_truncated_jpeg_is_refused_by_name(tmp_path: Path) -> None:
    whole = tmp_path / "whole.jpg"
    Image.fromarray(_random_rgb(64, 64)).save(whole, quality=90)
    data = whole.read_bytes()
    half = tmp_path / "half.jpg"
    half.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadInputError, match="half.jpg.*truncated"):
        load_image(half)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("empty.png", b"", "empty"),
        ("notes.png", b"shopping list: milk, eggs\n", "text file"),
        ("broken.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "corrupt"),
        ("noise.bin", bytes(range(256)) * 4, "not an image"),
    ],
)
def test_unreadable_files_are_refused_by_name(
    tmp_path: Path, name: str, content: bytes, expected: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(BadInputError, match=expected) as caught:
        load_image(path)
    assert name in str(caught.value)


def test_missing_file_and_folder_are_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="ghost.png.*does not exist"):
        load_image(tmp_path / "ghost.png")
    folder = tmp_path / "holiday"
    folder.mkdir()
    with pytest.raises(BadInputError, match="holiday.*folder"):
        load_image(folder)


@pytest.mark.parametrize("limit", [0.00004, 0.00006])  # 100 pixels against a limit of 40 or 60
def test_photo_over_the_megapixel_limit_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: float) -> None:
    path = tmp_path / "bomb.png"
    Image.fromarray(_random_rgb(10, 10)).save(path)
    monkeypatch.setenv("DGP_STUDIO_MAX_MEGAPIXELS", str(limit))
    with pytest.raises(BadInputError, match="bomb.png is 10×10 .*limit.*DGP_STUDIO_MAX_MEGAPIXELS") as refused:
        load_image(path)
    assert "corrupt" not in str(refused.value)
    assert load_image(path, max_megapixels=0.0001).size == (10, 10)


def test_unsupported_mode_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "lab.tif"
    Image.new("LAB", (2, 2)).save(path)
    with pytest.raises(BadInputError, match="lab.tif.*mode 'LAB'"):
        load_image(path)


# ----------------------------------------------------------------------------- masks


def test_grey_mask_loads_as_float_fraction(tmp_path: Path) -> None:
    path = tmp_path / "mask.png"
    Image.fromarray(np.array([[0, 255, 51]], dtype=np.uint8)).save(path)
    mask = load_mask(path, size=(3, 1))
    assert mask.dtype == np.float32 and mask.shape == (1, 3)
    np.testing.assert_allclose(mask, [[0.0, 1.0, 0.2]], atol=1e-6)


def test_mask_size_mismatch_names_both_sizes(tmp_path: Path) -> None:
    path = tmp_path / "mask.png"
    Image.new("L", (64, 48), 255).save(path)
    with pytest.raises(BadInputError, match="mask.png is 64×48 but the image is 400×300"):
        load_mask(path, size=(400, 300))


def test_mask_without_paint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "blank.png"
    Image.new("L", (4, 4), 0).save(path)
    with pytest.raises(BadInputError, match="blank.png has no painted pixels"):
        load_mask(path, size=(4, 4))


def test_rgba_mask_of_one_colour_uses_alpha(tmp_path: Path) -> None:
    layer = np.zeros((2, 2, 4), dtype=np.uint8)
    layer[..., :3] = (255, 0, 0)  # a red brush: dark in luminance, so only alpha can be the mask
    layer[..., 3] = [[0, 255], [128, 0]]
    path = tmp_path / "strokes.png"
    Image.fromarray(layer, mode="RGBA").save(path)
    np.testing.assert_allclose(load_mask(path, size=(2, 2)), [[0.0, 1.0], [128 / 255, 0.0]], atol=1e-6)


def test_rgba_mask_of_varying_colour_uses_luminance(tmp_path: Path) -> None:
    layer = np.full((1, 2, 4), 255, dtype=np.uint8)
    layer[0, 0, :3] = 0  # black = keep, white = painted, alpha opaque everywhere
    path = tmp_path / "bw.png"
    Image.fromarray(layer, mode="RGBA").save(path)
    np.testing.assert_allclose(load_mask(path, size=(2, 1)), [[0.0, 1.0]], atol=1e-6)


def test_unreadable_mask_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "mask.png"
    path.write_text("not a mask")
    with pytest.raises(BadInputError, match="mask.png"):
        load_mask(path, size=(2, 2))


# ----------------------------------------------------------------------------- saving


def test_save_refuses_the_protected_original_even_with_overwrite(tmp_path: Path) -> None:
    original = tmp_path / "original.png"
    Image.fromarray(_random_rgb(4, 4)).save(original)
    before = original.read_bytes()
    with pytest.raises(BadInputError, match="original"):
        save_image(_random_rgb(4, 4, seed=1), original, overwrite=True, protect=original)
    # Through another spelling of the same path, too.
    alias = tmp_path / "sub" / ".." / "original.png"
    (tmp_path / "sub").mkdir()
    with pytest.raises(BadInputError):
        save_image(_random_rgb(4, 4, seed=1), alias, overwrite=True, protect=original)
    assert original.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["original.png", "sub"]


def test_save_refuses_existing_file_unless_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "out.png"
    first, second = _random_rgb(3, 3, seed=1), _random_rgb(3, 3, seed=2)
    save_image(first, target)
    with pytest.raises(BadInputError, match="out.png already exists"):
        save_image(second, target)
    np.testing.assert_array_equal(np.asarray(Image.open(target).convert("RGB")), first)
    save_image(second, target, overwrite=True)
    np.testing.assert_array_equal(np.asarray(Image.open(target).convert("RGB")), second)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # no temporary file left


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_saved_file_gets_ordinary_permissions(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        target = save_image(_random_rgb(2, 2), tmp_path / "shared.png")
    finally:
        os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o644  # not the 0600 of a mkstemp file


def test_png_metadata_round_trips_as_text_chunks(tmp_path: Path) -> None:
    target = tmp_path / "result.png"
    save_image(_random_rgb(2, 2), target, metadata={"dgp:task": "colorize", "dgp:note": "Köln café ✓"})
    with Image.open(target) as reopened:
        assert reopened.text["dgp:task"] == "colorize"
        assert reopened.text["dgp:note"] == "Köln café ✓"


@pytest.mark.parametrize("suffix", [".jpg", ".JPEG", ".webp"])
def test_lossy_formats_by_suffix_with_metadata_in_exif(tmp_path: Path, suffix: str) -> None:
    target = tmp_path / f"result{suffix}"
    pixels = np.full((8, 8, 3), (200, 60, 30), dtype=np.uint8)
    save_image(pixels, target, quality=90, metadata={"task": "sr"})
    with Image.open(target) as reopened:
        assert reopened.size == (8, 8)
        assert np.abs(np.asarray(reopened.convert("RGB")).astype(int) - pixels).max() <= 6
        assert json.loads(reopened.getexif()[0x010E]) == {"task": "sr"}


def test_save_refuses_unknown_suffix_and_bad_arrays(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="out.bmp.*suffix"):
        save_image(_random_rgb(2, 2), tmp_path / "out.bmp")
    with pytest.raises(BadInputError, match="uint8"):
        save_image(np.zeros((2, 2, 3), dtype=np.float32), tmp_path / "out.png")
    with pytest.raises(BadInputError, match="folder"):
        save_image(_random_rgb(2, 2), tmp_path / "missing" / "out.png")
    assert list(tmp_path.iterdir()) == []


def test_failed_encode_leaves_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_save(self, fp, format=None, **params):
        fp.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(BadInputError, match="out.png could not be written"):
        save_image(_random_rgb(2, 2), tmp_path / "out.png")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- tensors


def test_to_tensor_range_layout_and_exact_round_trip() -> None:
    pixels = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    pixels[..., 1] = 255 - pixels[..., 1]
    tensor = to_tensor(pixels)
    assert tensor.shape == (1, 3, 16, 16) and tensor.dtype == torch.float32
    assert tensor.min().item() == -1.0 and tensor.max().item() == 1.0
    assert tensor[0, 1, 0, 0].item() == 1.0  # channel 1 of pixel (0, 0) is 255
    np.testing.assert_array_equal(to_uint8(tensor), pixels)
    np.testing.assert_array_equal(to_uint8(tensor[0]), pixels)


def test_to_uint8_accepts_bfloat16_and_clamps() -> None:
    values = torch.tensor([-3.0, -1.0, 0.0, 1.0, 3.0]).view(1, 1, 1, 5).expand(1, 3, 1, 5)
    out = to_uint8(values.to(torch.bfloat16))
    assert out.shape == (1, 5, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, :, 0], [0, 0, 128, 255, 255])
    with pytest.raises(BadInputError, match="NaN"):
        to_uint8(torch.full((3, 2, 2), float("nan")))
    with pytest.raises(BadInputError, match=r"\(1, 3, H, W\)"):
        to_uint8(torch.zeros(2, 3, 4, 4))


def test_loaded_file_is_never_written(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    Image.fromarray(_random_rgb(8, 8)).save(path)
    stamp = os.stat(path).st_mtime_ns
    data = path.read_bytes()
    load_image(path)
    assert os.stat(path).st_mtime_ns == stamp and path.read_bytes() == data
