"""Loading, saving and tensor conversion of user images.

Users bring camera photos (4000×3000, EXIF-rotated, CMYK scans, 16-bit PNGs, palette
GIFs with transparency); the model works on a small square in [-1, 1]. This module turns
any of those files into one predictable array (H×W×3 uint8 sRGB plus an optional
separate alpha), refuses files it cannot read with one sentence that names the file,
and writes results atomically without ever touching the original.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from engine.errors import BadInputError
from engine.files import MAX_INPUT_BYTES, atomic_open, check_regular_file, same_file

__all__ = [
    "DEFAULT_MAX_MEGAPIXELS",
    "MAX_MEGAPIXELS_VARIABLE",
    "SAVE_FORMATS",
    "LoadedImage",
    "load_image",
    "load_mask",
    "max_megapixels",
    "save_image",
]

#: Output formats by lower-case suffix.
SAVE_FORMATS: dict[str, str] = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}

#: Photos up to this many megapixels are read unless the limit is raised.
DEFAULT_MAX_MEGAPIXELS = 150.0
#: The environment variable that sets the limit (``--max-megapixels`` on the command line).
MAX_MEGAPIXELS_VARIABLE = "DGP_STUDIO_MAX_MEGAPIXELS"

_EXIF_ORIENTATION_TAG = 0x0112
_EXIF_IMAGE_DESCRIPTION_TAG = 0x010E

# Leading bytes of the formats users commonly bring; used only to word the error for a
# file Pillow cannot identify ("a corrupt PNG" rather than "not an image").
_MAGIC_NUMBERS: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
)


@dataclass(frozen=True)
class LoadedImage:
    """An image file decoded to 8-bit sRGB, as the engine uses it.

    Attributes
    ----------
    path : Path
        The file that was read (never written to).
    rgb : np.ndarray
        H×W×3 uint8, C-contiguous, sRGB, already turned upright by the EXIF orientation.
    alpha : np.ndarray or None
        H×W uint8 (255 = opaque) when the file had transparency, else None. Kept apart from
        ``rgb`` so that restoration never sees or alters it.
    original_mode : str
        Pillow's mode of the file as decoded (``"RGB"``, ``"CMYK"``, ``"I;16"``, ``"P"``, ...).
    sha256 : str
        Hex SHA-256 of the file's bytes; identifies the input for caches and projects.
    notes : tuple of str
        What was done to get here, one short sentence each (e.g. "converted from CMYK").
    """

    path: Path
    rgb: np.ndarray
    alpha: np.ndarray | None
    original_mode: str
    sha256: str
    notes: tuple[str, ...]

    @property
    def width(self) -> int:
        """Width in pixels (after the EXIF rotation)."""
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        """Height in pixels (after the EXIF rotation)."""
        return int(self.rgb.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)``, Pillow's order."""
        return (self.width, self.height)


# --------------------------------------------------------------------------------------
# Reading


def max_megapixels(value: float | None = None) -> float:
    """The megapixel limit: ``value`` if given, else ``$DGP_STUDIO_MAX_MEGAPIXELS``, else 150."""
    if value is None:
        text = os.environ.get(MAX_MEGAPIXELS_VARIABLE, "").strip()
        if not text:
            return DEFAULT_MAX_MEGAPIXELS
        try:
            value = float(text)
        except ValueError:
            raise BadInputError(f"{MAX_MEGAPIXELS_VARIABLE}={text!r} is not a number of megapixels.") from None
    if not np.isfinite(value) or value <= 0:
        raise BadInputError(f"the megapixel limit must be a positive number, got {value!r}.")
    return float(value)


def _read_file_bytes(path: Path, *, what: str = "image file") -> bytes:
    """Read a regular file of at most :data:`engine.files.MAX_INPUT_BYTES`; every problem is one sentence.

    The file is looked at with ``stat`` before it is opened, so a FIFO (which
    would block until a writer comes), a device such as ``/dev/zero`` (which
    never ends) or a folder is refused without being read.
    """
    check_regular_file(path, what=what, max_bytes=MAX_INPUT_BYTES)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_INPUT_BYTES + 1)
    except OSError as error:
        raise BadInputError(f"{path} cannot be read ({error.strerror or error}).") from error
    if len(data) > MAX_INPUT_BYTES:
        raise BadInputError(f"{path} grew past {MAX_INPUT_BYTES >> 20} MiB while it was read.")
    if not data:
        raise BadInputError(f"{path} is empty (0 bytes).")
    return data


def _describe_unidentified(path: Path, data: bytes) -> str:
    """Word the error for bytes Pillow cannot identify: corrupt image, text, or other."""
    for magic, format_name in _MAGIC_NUMBERS:
        if data.startswith(magic):
            return f"{path} starts like a {format_name} file but is corrupt."
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return f"{path} starts like a WebP file but is corrupt."
    head = data[:4096]
    if b"\x00" not in head:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as error:
            # A multi-byte character cut at the 4096-byte boundary is still text.
            if error.start < len(head) - 4:
                return f"{path} is not an image (Pillow recognises no image format in it)."
        return f"{path} is a text file, not an image."
    return f"{path} is not an image (Pillow recognises no image format in it)."


def _open_decoded(path: Path, data: bytes, *, limit_megapixels: float | None = None) -> Image.Image:
    """Open and fully decode ``data``; every failure becomes a :class:`BadInputError`.

    Pillow decodes lazily, so a truncated file opens fine and only fails in ``load()``;
    forcing the decode here is what makes a half-downloaded photo an error instead of a
    grey band at the bottom. The pixel count is checked against :func:`max_megapixels`
    from the header, before anything is decoded; Pillow's own decompression-bomb limit
    is raised to match, never lowered.
    """
    limit = max_megapixels(limit_megapixels)
    limit_pixels = int(limit * 1_000_000)
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < limit_pixels:
        Image.MAX_IMAGE_PIXELS = limit_pixels
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > limit_pixels:
                raise BadInputError(
                    f"{path} is {width}×{height} ({width * height / 1e6:.3g} MP), more than the limit of "
                    f"{limit:g} MP; raise it with --max-megapixels or {MAX_MEGAPIXELS_VARIABLE}."
                )
            image.load()
        except BadInputError:
            raise
        except Image.DecompressionBombError as error:
            raise BadInputError(
                f"{path} has more pixels than the limit of {limit:g} MP; raise it with --max-megapixels "
                f"or {MAX_MEGAPIXELS_VARIABLE}."
            ) from error
        except UnidentifiedImageError as error:
            raise BadInputError(_describe_unidentified(path, data)) from error
        except OSError as error:
            if "truncated" in str(error):
                raise BadInputError(
                    f"{path} is truncated (the file ends before the image data does)."
                ) from error
            raise BadInputError(f"{path} is corrupt ({error}).") from error
        except MemoryError as error:
            raise BadInputError(f"{path} does not fit in memory once decoded.") from error
        except (SyntaxError, ValueError, EOFError) as error:
            raise BadInputError(f"{path} is corrupt ({error}).") from error
    return image


def _exif_upright(image: Image.Image, notes: list[str]) -> Image.Image:
    """Apply the EXIF orientation so that the array matches what viewers show."""
    try:
        orientation = image.getexif().get(_EXIF_ORIENTATION_TAG, 1)
    except Exception:  # noqa: BLE001 - Pillow raises many types for broken EXIF blocks
        notes.append("ignored unreadable EXIF data (orientation unknown, kept as stored)")
        return image
    if orientation in (None, 1):
        return image
    if orientation not in range(2, 9):
        notes.append(f"ignored invalid EXIF orientation {orientation}")
        return image
    upright = ImageOps.exif_transpose(image)
    notes.append(f"rotated by EXIF orientation {orientation}")
    return upright


def _integer_bit_depth(image: Image.Image) -> int:
    """Magnitude bits of a mode-"I" image: 16 for 16-bit files, 31 otherwise.

    Pillow's "I" is signed 32-bit, whose largest value is 2³¹ − 1: 31 magnitude bits.
    """
    if image.format == "PNG":
        return 16  # PNG has no 32-bit samples; older Pillow decoded 16-bit grey as "I"
    tag = getattr(image, "tag_v2", None)
    if tag is not None:
        bits = tag.get(258)
        if isinstance(bits, tuple) and bits:
            bits = bits[0]
        if isinstance(bits, int) and bits in (8, 16):
            return bits
    return 31


def _integer_to_8bit(path: Path, samples: np.ndarray, bits: int, notes: list[str]) -> np.ndarray:
    """Scale non-negative ``bits``-bit samples to 8 bits by dropping the low bits (v >> (bits-8)).

    Shifting by the type's bit depth (not by the image's own maximum) keeps a dark
    16-bit photo dark: 65535 → 255, 32768 → 128, 255 → 0, exactly like Pillow's own
    16-bit RGB PNG decoding.
    """
    values = samples.astype(np.int64)
    if values.min() < 0:
        notes.append("clipped negative samples to 0")
        values = np.maximum(values, 0)
    limit = (1 << bits) - 1
    if values.max() > limit:
        raise BadInputError(f"{path} has samples above {limit}, the maximum of its sample type.")
    notes.append(f"scaled samples of maximum {limit} to 8 bit (>>{bits - 8})")
    return (values >> (bits - 8)).astype(np.uint8)


def _float_to_8bit(path: Path, samples: np.ndarray, notes: list[str]) -> np.ndarray:
    """Scale floating-point samples: [0, 1] → ×255, else [0, 255] as is; anything else is refused."""
    if not np.all(np.isfinite(samples)):
        raise BadInputError(f"{path} contains NaN or infinite samples.")
    low, high = float(samples.min()), float(samples.max())
    if low < 0.0:
        raise BadInputError(f"{path} has negative floating-point samples (down to {low:g}).")
    if high <= 1.0:
        scale = 255.0
        notes.append("scaled floating-point samples from [0, 1] to 8 bit")
    elif high <= 255.0:
        scale = 1.0
        notes.append("rounded floating-point samples in [0, 255] to 8 bit")
    else:
        raise BadInputError(
            f"{path} has floating-point samples up to {high:g}, outside both [0, 1] and [0, 255], "
            "so their scale is unknown."
        )
    return np.clip(np.rint(samples.astype(np.float64) * scale), 0, 255).astype(np.uint8)


def _split_modes(path: Path, image: Image.Image, notes: list[str]) -> tuple[Image.Image, np.ndarray | None]:
    """Reduce any supported mode to an 8-bit "RGB", "L" or "CMYK" image plus a separate alpha."""
    mode = image.mode
    if mode in ("RGB", "L", "CMYK"):
        if mode == "CMYK":
            notes.append("converted from CMYK")
        return image, None
    if mode == "RGBX":
        return image.convert("RGB"), None
    if mode == "YCbCr":
        notes.append("converted from YCbCr")
        return image.convert("RGB"), None
    if mode in ("RGBA", "RGBa"):
        rgba = image.convert("RGBA")
        return rgba.convert("RGB"), np.asarray(rgba.getchannel("A")).copy()
    if mode in ("LA", "La"):
        la = image.convert("LA")
        return la.getchannel("L"), np.asarray(la.getchannel("A")).copy()
    if mode in ("P", "PA"):
        if mode == "PA" or "transparency" in image.info:
            rgba = image.convert("RGBA")
            notes.append("expanded a palette with transparency")
            return rgba.convert("RGB"), np.asarray(rgba.getchannel("A")).copy()
        notes.append("expanded a palette")
        return image.convert("RGB"), None
    if mode == "1":
        return image.convert("L"), None
    if mode.startswith("I;16"):
        samples = np.asarray(image)
        return Image.fromarray(_integer_to_8bit(path, samples, 16, notes), mode="L"), None
    if mode == "I":
        samples = np.asarray(image)
        eight_bit = _integer_to_8bit(path, samples, _integer_bit_depth(image), notes)
        return Image.fromarray(eight_bit, mode="L"), None
    if mode == "F":
        samples = np.asarray(image)
        return Image.fromarray(_float_to_8bit(path, samples, notes), mode="L"), None
    raise BadInputError(f"{path} has the unsupported pixel mode {mode!r}.")


def _to_srgb(base: Image.Image, icc_profile: bytes | None, notes: list[str]) -> Image.Image:
    """Convert an 8-bit RGB/L/CMYK image to sRGB RGB, through its embedded ICC profile if any.

    A profile that is already sRGB is not applied (an sRGB→sRGB round trip through
    littleCMS can move values by one level for nothing). A profile that littleCMS cannot
    use (damaged, or for another colour space than the pixels) is ignored with a note,
    as image viewers do, rather than rejecting an otherwise readable photo.
    """
    if icc_profile:
        try:
            source_profile = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
            description = (ImageCms.getProfileDescription(source_profile) or "").strip()
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as error:
            notes.append(f"ignored an unreadable embedded ICC profile ({error})")
        else:
            if description.lower().startswith("srgb") and base.mode in ("RGB", "L"):
                return base.convert("RGB") if base.mode == "L" else base
            try:
                converted = ImageCms.profileToProfile(
                    base,
                    source_profile,
                    ImageCms.createProfile("sRGB"),
                    renderingIntent=ImageCms.Intent.PERCEPTUAL,
                    outputMode="RGB",
                )
            except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as error:
                notes.append(f"ignored the embedded ICC profile {description!r} ({error})")
            else:
                assert converted is not None  # profileToProfile returns an image unless inPlace
                notes.append(f"converted from the embedded ICC profile {description!r} to sRGB")
                return converted
    return base if base.mode == "RGB" else base.convert("RGB")


_BAND_ROWS = 256


def _rgb_array(image: Image.Image) -> np.ndarray:
    """Copy an RGB image into a new H×W×3 uint8 array band by band.

    ``np.asarray(image)`` goes through ``Image.tobytes``, which joins encoded
    chunks into one bytes object: two extra copies of the pixels at the peak.
    Bands of 256 rows keep the extra memory to one band (for a 108 MP photo
    about 0.3 GB less at the peak; ``docs/benchmarks.md``, "Large photos").
    """
    if image.mode != "RGB":
        image = image.convert("RGB")
    width, height = image.size
    rgb = np.empty((height, width, 3), np.uint8)
    for top in range(0, height, _BAND_ROWS):
        bottom = min(height, top + _BAND_ROWS)
        band = image.crop((0, top, width, bottom)).tobytes()
        rgb[top:bottom] = np.frombuffer(band, np.uint8).reshape(bottom - top, width, 3)
    return rgb


def load_image(path: str | os.PathLike[str], *, max_megapixels: float | None = None) -> LoadedImage:
    """Read an image file into upright 8-bit sRGB, with its alpha kept apart.

    Parameters
    ----------
    path : str or path-like
        Any format Pillow reads. Only the first frame of animations/multi-page files is used.
    max_megapixels : float, optional, keyword-only
        The largest photo accepted; default ``$DGP_STUDIO_MAX_MEGAPIXELS`` or 150.

    Returns
    -------
    LoadedImage
        ``rgb`` is H×W×3 uint8 in [0, 255] (sRGB), ``alpha`` H×W uint8 or None.

    Raises
    ------
    BadInputError
        One sentence naming the file for: a missing file, a folder, a device or pipe, a
        file over 1 GiB, an empty (0-byte), truncated, corrupt or non-image file, an image
        over the megapixel limit, an unsupported pixel mode.

    Notes
    -----
    Steps, each recorded in ``notes`` when it changes something:

    1. the file is read once into memory (its SHA-256 is taken from those bytes) and fully
       decoded, so a truncated file fails here rather than showing a grey band later;
    2. the EXIF orientation is applied (``ImageOps.exif_transpose``);
    3. the mode is reduced to 8-bit: RGBA/LA/PA and palettes with transparency give a
       separate alpha; "1" becomes 0/255; 16-bit ("I;16*", and "I" from PNG) is shifted
       ``>> 8``; 32-bit "I" (signed, max 2³¹ − 1) is shifted ``>> 23`` after clipping
       negatives; "F" is taken as
       [0, 1] if its maximum is ≤ 1, as [0, 255] if ≤ 255, and refused otherwise;
    4. an embedded ICC profile is converted to sRGB with littleCMS (perceptual intent);
       CMYK without a profile uses Pillow's plain conversion; grey becomes R = G = B.

    The file is opened read-only; nothing is ever written to it.
    """
    path = Path(path)
    data = _read_file_bytes(path, what="image file")
    digest = hashlib.sha256(data).hexdigest()
    image = _open_decoded(path, data, limit_megapixels=max_megapixels)
    del data
    notes: list[str] = []
    frames = getattr(image, "n_frames", 1)
    if frames > 1 and image.format != "MPO":  # MPO's extra frames are previews, not pages
        notes.append(f"used the first of {frames} frames")
    original_mode = image.mode
    icc_profile = image.info.get("icc_profile")
    upright = _exif_upright(image, notes)
    base, alpha = _split_modes(path, upright, notes)
    rgb_image = _to_srgb(base, icc_profile, notes)
    del image, upright, base
    rgb = _rgb_array(rgb_image)
    del rgb_image
    if rgb.ndim != 3 or rgb.shape[2] != 3:  # defensive: every branch above ends in RGB
        raise BadInputError(f"{path} could not be converted to RGB (got shape {rgb.shape}).")
    if alpha is not None:
        alpha = np.ascontiguousarray(alpha, dtype=np.uint8)
    return LoadedImage(
        path=path, rgb=rgb, alpha=alpha, original_mode=original_mode, sha256=digest, notes=tuple(notes)
    )


def load_mask(path: str | os.PathLike[str], *, size: tuple[int, int]) -> np.ndarray:
    """Read a painted mask; 1 marks pixels to be filled (missing), 0 pixels to keep.

    Parameters
    ----------
    path : str or path-like
        An 8-bit image, typically a PNG in mode L, 1, RGB or RGBA (LA, P and 16-bit grey
        are accepted too). The EXIF orientation, if any, is applied like for the image.
    size : tuple of int
        ``(width, height)`` of the image the mask belongs to; the mask must match exactly
        (it is never resized silently).

    Returns
    -------
    np.ndarray
        H×W float32 in [0, 1]; 1 = painted = to be filled. Soft values (anti-aliased brush
        edges) are kept.

    Raises
    ------
    BadInputError
        When the file is unreadable (same checks as :func:`load_image`), of another size
        than ``size``, of an unsupported mode, or has no painted pixel at all.

    Notes
    -----
    Which channel carries the mask:

    * L, 1, RGB: the brightness (Pillow's ITU-R 601 luma for RGB); white = painted.
    * RGBA / LA / palette with transparency: if every visible pixel (alpha > 0) has the
      same colour, the mask is in the alpha channel (a paint layer: strokes of one colour
      on a transparent background); otherwise the colour varies, so the mask is the
      brightness of the colour and the alpha is ignored (a black-and-white mask that
      happens to be saved with an alpha channel).
    """
    path = Path(path)
    expected_width, expected_height = (int(v) for v in size)
    data = _read_file_bytes(path, what="mask")
    image = _open_decoded(path, data)
    image = _exif_upright(image, [])
    if image.size != (expected_width, expected_height):
        raise BadInputError(
            f"the mask {path} is {image.width}×{image.height} but the image is "
            f"{expected_width}×{expected_height}."
        )
    mode = image.mode
    if mode in ("P", "PA"):
        has_transparency = mode == "PA" or "transparency" in image.info
        image = image.convert("RGBA") if has_transparency else image.convert("L")
        mode = image.mode
    if mode in ("RGBA", "RGBa", "LA", "La"):
        with_alpha = np.asarray(image.convert("RGBA"))
        alpha = with_alpha[..., 3]
        visible_colours = with_alpha[..., :3][alpha > 0]
        uniform = visible_colours.size == 0 or bool(np.all(visible_colours == visible_colours[0]))
        if uniform:
            mask = alpha.astype(np.float32) / 255.0
        else:
            mask = np.asarray(image.convert("RGB").convert("L"), dtype=np.float32) / 255.0
    elif mode in ("L", "1", "RGB", "RGBX", "YCbCr", "CMYK"):
        mask = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    elif mode.startswith("I;16") or mode == "I":
        bits = 16 if mode.startswith("I;16") else _integer_bit_depth(image)
        mask = _integer_to_8bit(path, np.asarray(image), bits, []).astype(np.float32) / 255.0
    else:
        raise BadInputError(f"{path} has the unsupported mask mode {mode!r}.")
    mask = np.ascontiguousarray(mask, dtype=np.float32)
    if not np.any(mask > 0):
        raise BadInputError(f"the mask {path} has no painted pixels (white marks what to fill).")
    return mask


# --------------------------------------------------------------------------------------
# Writing


def _check_rgb_uint8(rgb: object, name: str) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        shape = getattr(rgb, "shape", None)
        dtype = getattr(rgb, "dtype", type(rgb).__name__)
        raise BadInputError(f"{name} must be an H×W×3 uint8 array, got shape {shape} and dtype {dtype}.")
    if rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise BadInputError(f"{name} is empty (shape {rgb.shape}).")
    return rgb


def _encoder_options(
    format_name: str, *, quality: int, metadata: dict[str, str], path: Path
) -> dict[str, object]:
    srgb_profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    options: dict[str, object] = {"icc_profile": srgb_profile}
    if format_name == "PNG":
        info = PngInfo()
        for key, value in metadata.items():
            try:
                key.encode("latin-1")
            except UnicodeEncodeError as error:
                raise BadInputError(f"metadata key {key!r} for {path} is not Latin-1 text.") from error
            if not 1 <= len(key) <= 79:
                raise BadInputError(f"metadata key {key!r} for {path} must be 1 to 79 characters long.")
            info.add_text(key, value)  # non-Latin-1 values become iTXt (UTF-8) chunks
        options["pnginfo"] = info
        options["compress_level"] = 6
        return options
    options["quality"] = quality
    if format_name == "JPEG":
        # 4:4:4: chroma at full resolution, since colour is what colorization produces.
        options["subsampling"] = 0
        options["optimize"] = True
    if metadata:
        # JPEG and WebP have no text chunks; the same key/value pairs go into EXIF's
        # ImageDescription as one JSON object.
        exif = Image.Exif()
        exif[_EXIF_IMAGE_DESCRIPTION_TAG] = json.dumps(metadata, ensure_ascii=False, sort_keys=True)
        options["exif"] = exif.tobytes()
    return options


def save_image(
    rgb: np.ndarray,
    path: str | os.PathLike[str],
    *,
    quality: int = 95,
    metadata: dict[str, str] | None = None,
    overwrite: bool = False,
    protect: str | os.PathLike[str] | None = None,
) -> Path:
    """Write an RGB array atomically as PNG, JPEG or WebP (chosen by the suffix).

    Parameters
    ----------
    rgb : np.ndarray
        H×W×3 uint8 sRGB in [0, 255].
    path : str or path-like
        Destination; ``.png``, ``.jpg``/``.jpeg`` or ``.webp`` (any case). The folder must exist.
    quality : int, keyword-only
        1–100 for JPEG and WebP (JPEG is written with 4:4:4 chroma); ignored for PNG.
    metadata : dict of str to str, optional, keyword-only
        PNG: one text chunk per key (tEXt, or iTXt for non-Latin-1 values). JPEG/WebP: the
        dictionary as a JSON object in EXIF ImageDescription.
    overwrite : bool, keyword-only
        Replace an existing file. Without it an existing ``path`` is refused.
    protect : str or path-like, optional, keyword-only
        A file that must never be replaced (the original image), even with ``overwrite``.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    BadInputError
        For a bad array, an unknown suffix, a missing folder, ``path`` being ``protect``,
        an existing file without ``overwrite``, invalid metadata or a failed write.

    Notes
    -----
    The image is written through :func:`engine.files.atomic_open`: a recognisable
    temporary file in the destination folder, flushed with its folder, then moved into
    place (never over a file that appeared meanwhile unless ``overwrite``). A crash
    therefore leaves either the old file or the complete new one, and the temporary file
    is removed on every error. An sRGB ICC profile is embedded.
    """
    rgb = _check_rgb_uint8(rgb, "the image to save")
    path = Path(path)
    format_name = SAVE_FORMATS.get(path.suffix.lower())
    if format_name is None:
        raise BadInputError(
            f"{path} has the unsupported suffix {path.suffix!r}; use .png, .jpg, .jpeg or .webp."
        )
    if protect is not None and same_file(path, Path(protect)):
        raise BadInputError(f"{path} is the original image and is never overwritten.")
    if path.is_dir():
        raise BadInputError(f"{path} is a folder, not a file name.")
    if path.exists() and not overwrite:
        raise BadInputError(f"{path} already exists and overwriting was not requested.")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise BadInputError(f"{path} cannot be written because the folder {folder} does not exist.")
    if not isinstance(quality, int) or isinstance(quality, bool) or not 1 <= quality <= 100:
        raise BadInputError(f"quality for {path} must be an integer from 1 to 100, got {quality!r}.")
    metadata = dict(metadata or {})
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise BadInputError(f"metadata for {path} must map text to text, got {key!r}: {value!r}.")
    options = _encoder_options(format_name, quality=quality, metadata=metadata, path=path)

    try:
        with atomic_open(path, overwrite=overwrite) as stream:
            Image.fromarray(np.ascontiguousarray(rgb), mode="RGB").save(stream, format=format_name, **options)
    except ValueError as error:
        raise BadInputError(f"{path} could not be written ({error}).") from error
    return path
