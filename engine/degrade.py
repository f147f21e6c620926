"""Degradations ϕ of Deep Generative Prior: grayscale, masking and downsampling.

DGP compares ϕ(G(z)) with the degraded target x̂ = ϕ(x); this module holds the
operators that make up ϕ (method note ``dgp-method.md`` §4) and their
composition, :class:`Degradation`. Every image is an ``(N, C, H, W)`` float
tensor with values in [-1, 1], as everywhere inside the method.

Super-resolution has two different operators, as in the reference code (which
takes them from Deep Image Prior): the *target path* resizes a uint8 image with
PIL's Lanczos-3 filter, the *generator path* is a fixed, differentiable
Lanczos-2 convolution. Both are re-upsampled bilinearly so that the loss and the
discriminator work at full model resolution (§4.3).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from engine.errors import BadInputError

__all__ = [
    "DEGRADATION_TASKS",
    "SUPPORTED_SR_FACTORS",
    "Degradation",
    "centered_square_mask",
    "degradation_for_task",
    "downsample_generator_path",
    "downsample_target_path",
    "lanczos2_taps",
    "match_low_resolution",
    "rgb_to_gray",
    "upsample_bilinear",
]

#: Downsampling factors the SR operators accept (the reference uses 4 for SR, 2 in hybrid).
SUPPORTED_SR_FACTORS: tuple[int, ...] = (2, 4, 8)

#: Task names understood by :func:`degradation_for_task`.
DEGRADATION_TASKS: tuple[str, ...] = ("colorize", "inpaint", "sr", "hybrid", "reconstruct", "defend")

# ITU-R 601 luma weights as the reference writes them (§4.1). They sum to 0.9999 and are
# applied to [-1, 1] values, so the result is not bit-equal to graying in [0, 1].
_GRAY_WEIGHTS: tuple[float, float, float] = (0.2989, 0.5870, 0.1140)

# Lanczos-2 of the generator path (§4.3): support a = 2 lobes.
_LANCZOS_SUPPORT = 2


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _format_size(height: int, width: int) -> str:
    return f"{height}×{width}"


def _check_image(x: torch.Tensor, *, name: str = "image") -> None:
    """Raise unless ``x`` is a floating ``(N, C, H, W)`` tensor."""
    if not isinstance(x, torch.Tensor):
        raise BadInputError(f"the {name} must be a torch.Tensor, not {type(x).__name__}")
    if x.ndim != 4:
        raise BadInputError(f"the {name} must have shape (N, C, H, W) but has shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise BadInputError(f"the {name} must be a floating-point tensor in [-1, 1], not {x.dtype}")


def _check_factor(factor: int) -> None:
    # bool is an int subclass; True would otherwise pass as factor 1.
    if isinstance(factor, bool) or not isinstance(factor, int) or factor not in SUPPORTED_SR_FACTORS:
        allowed = ", ".join(str(f) for f in SUPPORTED_SR_FACTORS)
        raise BadInputError(f"the downsampling factor must be one of {allowed}, not {factor!r}")


def _check_divisible(x: torch.Tensor, factor: int) -> None:
    height, width = x.shape[-2:]
    if height % factor or width % factor:
        raise BadInputError(
            f"the image is {_format_size(height, width)}, which is not divisible by the "
            f"downsampling factor {factor}"
        )


@contextlib.contextmanager
def _autocast_off(device_type: str) -> Iterator[None]:
    """Run the block in the input's own dtype even inside ``torch.autocast``.

    Autocast would run the convolution in reduced precision and, on CPU, the
    replication padding in float32, so the output dtype would depend on the
    surrounding context; the degradations promise to keep the input dtype.
    """
    if torch.amp.is_autocast_available(device_type):
        with torch.autocast(device_type=device_type, enabled=False):
            yield
    else:
        yield


# --------------------------------------------------------------------------------------------
# Grayscale (§4.1)
# --------------------------------------------------------------------------------------------


def rgb_to_gray(x: torch.Tensor) -> torch.Tensor:
    """Gray an RGB image the way the reference does, keeping three channels.

    Parameters
    ----------
    x : torch.Tensor
        RGB images, shape ``(N, 3, H, W)``, values in [-1, 1], any float dtype.

    Returns
    -------
    torch.Tensor
        ``0.2989·R + 0.5870·G + 0.1140·B`` replicated to 3 channels, shape
        ``(N, 3, H, W)``, same dtype and device as ``x``.

    Notes
    -----
    The weights are applied to the [-1, 1] values (method note §4.1); since they
    sum to 0.9999, graying a gray image shrinks it by 1e-4.
    """
    _check_image(x)
    if x.shape[1] != 3:
        raise BadInputError(f"graying needs a 3-channel RGB image but the image has {x.shape[1]} channels")
    red, green, blue = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    gray = _GRAY_WEIGHTS[0] * red + _GRAY_WEIGHTS[1] * green + _GRAY_WEIGHTS[2] * blue
    # repeat (not expand): callers may modify the result in place.
    return gray.repeat(1, 3, 1, 1)


# --------------------------------------------------------------------------------------------
# Inpainting mask (§4.2)
# --------------------------------------------------------------------------------------------


def centered_square_mask(
    height: int,
    width: int,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The reference inpainting mask: one centred square hole.

    Parameters
    ----------
    height, width : int
        Image size in pixels.
    device, dtype
        Where and how to create the mask.

    Returns
    -------
    torch.Tensor
        Shape ``(1, 1, height, width)``; 1 = known pixel, 0 = hole.

    Notes
    -----
    ``hole = min(H, W) // 3``, ``begin = (H - hole) // 2``, ``end = H - begin``;
    rows *and* columns ``[begin, end)`` are zeroed, both computed from H as in
    the reference (§4.2). The rounding makes the hole 42×42 at 128 px but
    86×86 (not 85) at 256 px.
    """
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise BadInputError(f"the mask {name} must be a positive integer, not {value!r}")
    hole = min(height, width) // 3
    begin = (height - hole) // 2
    end = height - begin
    mask = torch.ones(1, 1, height, width, device=device, dtype=dtype)
    mask[:, :, begin:end, begin:end] = 0
    return mask


# --------------------------------------------------------------------------------------------
# Super-resolution (§4.3)
# --------------------------------------------------------------------------------------------


def _lanczos(distance: float, *, support: int) -> float:
    """Lanczos window L(d) = a·sin(πd)·sin(πd/a) / (π²d²), L(0) = 1."""
    if distance == 0:
        return 1.0
    return support * math.sin(math.pi * distance) * math.sin(math.pi * distance / support) / (
        math.pi * math.pi * distance * distance
    )


def lanczos2_taps(factor: int) -> torch.Tensor:
    """1-D taps of the generator-path Lanczos-2, phase-½ downsampling kernel.

    Parameters
    ----------
    factor : int
        Downsampling factor f (a positive integer).

    Returns
    -------
    torch.Tensor
        ``4·f`` float64 taps that sum to 1; the 2-D kernel is their outer
        product.

    Notes
    -----
    Deep Image Prior's kernel with width parameter ``4f + 1`` and phase ½
    (method note §4.3): ``t_i = L(|i + ½ − c| / f)`` for ``i = 1 … 4f`` with
    ``c = (4f + 2) / 2``, then normalised. For f = 4 the first half is
    −0.00106538, −0.0097517, −0.02038399, −0.01487789, 0.02459406, 0.0986585,
    0.18311528, 0.23971112 (then mirrored).
    """
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise BadInputError(f"the Lanczos factor must be a positive integer, not {factor!r}")
    size = 4 * factor
    center = (size + 2) / 2
    taps = [_lanczos(abs(i + 0.5 - center) / factor, support=_LANCZOS_SUPPORT) for i in range(1, size + 1)]
    total = math.fsum(taps)
    return torch.tensor([t / total for t in taps], dtype=torch.float64)


def _generator_path_padding(factor: int) -> int:
    """Replication padding that makes the strided conv return exactly H/f rows.

    Deep Image Prior pads ``(kernel_size - factor) / 2`` for even kernels:
    6 for f = 4 (16 taps), 3 for f = 2 (8 taps), 12 for f = 8 (32 taps).
    """
    return (4 * factor - factor) // 2


@functools.lru_cache(maxsize=32)
def _separable_kernels(
    factor: int, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    # Cached: the generator path runs every iteration and the kernel never changes.
    taps = lanczos2_taps(factor).to(device=device, dtype=dtype)
    vertical = taps.view(1, 1, -1, 1)
    horizontal = taps.view(1, 1, 1, -1)
    return vertical, horizontal


def downsample_generator_path(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Differentiable Lanczos-2 downsampling applied to generator outputs.

    Parameters
    ----------
    x : torch.Tensor
        Images, shape ``(N, C, H, W)``, values in [-1, 1]; H and W divisible by
        ``factor``.
    factor : int
        2, 4 or 8.

    Returns
    -------
    torch.Tensor
        Shape ``(N, C, H/f, W/f)``, values in about [-1, 1] (Lanczos rings
        slightly), same dtype and device as ``x``; gradients flow to ``x``.

    Notes
    -----
    [-1, 1] → [0, 1] → replication padding of ``(4f − f) / 2`` → depthwise
    convolution with the separable Lanczos-2 phase-½ kernel of
    :func:`lanczos2_taps`, stride f → [-1, 1] (method note §4.3). The kernel is
    built in the input dtype and autocast is suspended, so the convolution
    runs in that dtype.
    """
    _check_image(x)
    _check_factor(factor)
    _check_divisible(x, factor)
    channels = x.shape[1]
    padding = _generator_path_padding(factor)
    vertical, horizontal = _separable_kernels(factor, x.dtype, x.device)
    with _autocast_off(x.device.type):
        unit = (x + 1) / 2
        padded = F.pad(unit, (padding, padding, padding, padding), mode="replicate")
        # The 2-D kernel is an outer product, so two 1-D passes give the same result at
        # 2·4f instead of (4f)² multiplications per output pixel.
        rows = F.conv2d(padded, vertical.expand(channels, 1, -1, 1), stride=(factor, 1), groups=channels)
        low = F.conv2d(rows, horizontal.expand(channels, 1, 1, -1), stride=(1, factor), groups=channels)
        return low * 2 - 1


def downsample_target_path(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Downsample targets the way the reference does: PIL Lanczos on uint8.

    Parameters
    ----------
    x : torch.Tensor
        Images, shape ``(N, C, H, W)`` with C = 3 (RGB) or any other count
        (resized channel by channel), values in [-1, 1]; H and W divisible by
        ``factor``.
    factor : int
        2, 4 or 8.

    Returns
    -------
    torch.Tensor
        Shape ``(N, C, H/f, W/f)``, values in [-1, 1] on the 1/255 grid, same
        dtype and device as ``x``. Not differentiable (detached).

    Notes
    -----
    [-1, 1] → [0, 1] → ×255, clip to [0, 255], cast to uint8 (truncation, not
    rounding) → ``PIL.Image.resize((W/f, H/f), Image.Resampling.LANCZOS)``
    (Lanczos-3 with antialiasing, formerly ``ANTIALIAS``) → /255 → [-1, 1]
    (method note §4.3). The truncation mirrors the reference; it can lower a
    pixel that came from a uint8 image by one level after the float round trip.
    """
    _check_image(x)
    _check_factor(factor)
    _check_divisible(x, factor)
    batch, channels, height, width = x.shape
    low_size = (width // factor, height // factor)  # PIL sizes are (width, height)
    # float32 on the CPU, as the reference converts before handing the array to PIL.
    unit = ((x.detach().to(device="cpu", dtype=torch.float32) + 1) / 2).numpy()
    as_uint8 = np.clip(unit * np.float32(255), 0, 255).astype(np.uint8)

    low_images = np.empty((batch, channels, low_size[1], low_size[0]), dtype=np.uint8)
    for index in range(batch):
        if channels == 3:
            pil = Image.fromarray(np.ascontiguousarray(as_uint8[index].transpose(1, 2, 0)), mode="RGB")
            low_images[index] = np.asarray(pil.resize(low_size, Image.Resampling.LANCZOS)).transpose(2, 0, 1)
        else:
            for channel in range(channels):
                pil = Image.fromarray(np.ascontiguousarray(as_uint8[index, channel]), mode="L")
                low_images[index, channel] = np.asarray(pil.resize(low_size, Image.Resampling.LANCZOS))

    low = torch.from_numpy(low_images).to(torch.float32) / 255
    return (low * 2 - 1).to(device=x.device, dtype=x.dtype)


def upsample_bilinear(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Bilinear re-upsampling shared by both SR paths.

    Parameters
    ----------
    x : torch.Tensor
        Images, shape ``(N, C, h, w)``, values in [-1, 1].
    factor : int
        Integer scale factor (2, 4 or 8 in DGP).

    Returns
    -------
    torch.Tensor
        Shape ``(N, C, h·f, w·f)``, same dtype and device as ``x``;
        differentiable.

    Notes
    -----
    ``F.interpolate(scale_factor=f, mode="bilinear", align_corners=False)``,
    the PyTorch ≥ 0.4 default the reference relies on (§4.3).
    """
    _check_image(x)
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise BadInputError(f"the upsampling factor must be a positive integer, not {factor!r}")
    with _autocast_off(x.device.type):
        return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


@functools.lru_cache(maxsize=16)
def _lanczos_resize_operator(size: int, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """PIL's Lanczos resize of ``size`` samples to ``size // factor`` as a matrix, and its pseudo-inverse.

    The matrix is read off PIL itself: resizing the rows of a float identity image
    gives the filter weights PIL uses, border renormalisation included.
    """
    identity = Image.fromarray(np.eye(size, dtype=np.float32), mode="F")
    resized = identity.resize((size // factor, size), Image.Resampling.LANCZOS)
    operator = np.asarray(resized, dtype=np.float64).T          # (size/f) × size
    return operator, np.linalg.pinv(operator)


def match_low_resolution(image_rgb: np.ndarray, low_rgb: np.ndarray, factor: int) -> np.ndarray:
    """The image nearest ``image_rgb`` whose Lanczos ×1/f downsampling is ``low_rgb``.

    Parameters
    ----------
    image_rgb : np.ndarray
        A super-resolution result, H×W×3 uint8.
    low_rgb : np.ndarray
        The low-resolution input it restores, (H/f)×(W/f)×3 uint8, made (or to be
        read as made) by PIL's Lanczos resize, the target path's operator.
    factor : int
        The super-resolution factor f.

    Returns
    -------
    np.ndarray
        H×W×3 uint8: ``image_rgb`` plus the smallest change (least squares) after
        which downsampling reproduces ``low_rgb``, clipped to [0, 255].

    Notes
    -----
    DGP's loss sees the result only through the generator path's Lanczos-2
    operator, so its result, downsampled like the input was, differs from the
    input in tones and edges. Projecting onto the images that downsample to the
    input removes that part of the error and keeps what the generator added
    above the input's frequencies. The operator is separable: ``low = A_v ·
    image · A_hᵀ`` per channel, so the correction is ``A_v⁺ · (low − A_v · image
    · A_hᵀ) · A_h⁺ᵀ``; write A for the whole operator and P(x) = x + A⁺(low − Ax).

    What it guarantees. A uint8 ``low_rgb`` is not the exact downsampling A·t of
    the truth t: PIL rounds each of its two passes and clips Lanczos overshoot
    to 0…255, so low = A·t + e. Then, exactly (A⁺A is an orthogonal projector),

        ‖P(x) − t‖² = ‖x − t‖² − ‖A⁺A(x − t)‖² + ‖A⁺e‖²,

    so the projection brings the result closer to the truth whenever its error
    in the input's frequencies, ‖A⁺A(x − t)‖, exceeds ‖A⁺e‖, and is never
    farther than √(‖x − t‖² + ‖A⁺e‖²) ≤ ‖x − t‖ + ‖A⁺e‖. A perfect result
    (x = t) moves by A⁺e: about 0.6 grey levels RMS (up to 1.2) on 64 px Tiny
    ImageNet photos at ×4. Clipping the output to 0…255 never increases the
    distance (t lies in that range); rounding to integers changes each pixel
    by at most ½. Only for an exact (float) ``low`` = A·t, e = 0 and the
    projection can only bring the result closer.
    """
    _check_factor(factor)
    image = np.asarray(image_rgb)
    low = np.asarray(low_rgb)
    for array, name in ((image, "the super-resolution result"), (low, "the low-resolution input")):
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
            raise BadInputError(f"{name} must be an H×W×3 uint8 image, not {array.dtype} of shape {array.shape}.")
    height, width = image.shape[:2]
    if height % factor or width % factor or low.shape[:2] != (height // factor, width // factor):
        raise BadInputError(
            f"a {_format_size(height, width)} result at ×{factor} needs a "
            f"{_format_size(height // factor, width // factor)} low-resolution input, "
            f"not {_format_size(*low.shape[:2])}."
        )
    vertical, vertical_inverse = _lanczos_resize_operator(height, factor)
    horizontal, horizontal_inverse = _lanczos_resize_operator(width, factor)
    values = image.astype(np.float64)
    residual = low.astype(np.float64) - np.einsum("ir,rcq,jc->ijq", vertical, values, horizontal)
    correction = np.einsum("ri,ijq,cj->rcq", vertical_inverse, residual, horizontal_inverse)
    return np.clip(np.rint(values + correction), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Composition (§4, §4.4)
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Degradation:
    """A degradation ϕ: optional SR resampling, then graying, then masking.

    Parameters
    ----------
    grayscale : bool
        Gray the image (colorization).
    sr_factor : int or None
        Downsample by 2, 4 or 8 and re-upsample bilinearly (super-resolution);
        None for no resampling.
    mask : torch.Tensor or None
        Known-pixel mask, shape ``(N or 1, 1, H, W)`` (or ``(H, W)``), values in
        [0, 1]: 1 = known, 0 = hole; soft values weight pixels. Any painted
        shape. Boolean masks are converted to float32.

    Notes
    -----
    The order is the reference's ``pre_process`` order (method note §4):
    (1) SR resampling, (2) graying, (3) masking; the hole is multiplied by 0,
    which is mid-grey in [-1, 1]. The generator path is differentiable; the
    target path uses PIL's Lanczos-3 for the resampling (§4.3).

    Equality compares the settings and the mask values.
    """

    grayscale: bool = False
    sr_factor: int | None = None
    mask: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.grayscale, bool):
            raise BadInputError(f"grayscale must be True or False, not {self.grayscale!r}")
        if self.sr_factor is not None:
            _check_factor(self.sr_factor)
        if self.mask is not None:
            object.__setattr__(self, "mask", _validated_mask(self.mask))

    # -- properties ---------------------------------------------------------------------------

    @property
    def is_identity(self) -> bool:
        """True when ϕ leaves images unchanged (no gray, no SR, no mask)."""
        return not self.grayscale and self.sr_factor is None and self.mask is None

    def describe(self) -> str:
        """A short human-readable summary, e.g. ``"grayscale + ×4 downsampling + mask"``."""
        parts = []
        if self.grayscale:
            parts.append("grayscale")
        if self.sr_factor is not None:
            parts.append(f"×{self.sr_factor} downsampling")
        if self.mask is not None:
            parts.append("mask")
        return " + ".join(parts) if parts else "identity"

    def to(self, device: torch.device | str) -> Degradation:
        """A copy whose mask lives on ``device`` (the settings are unchanged)."""
        if self.mask is None:
            return self
        return dataclasses.replace(self, mask=self.mask.to(device))

    def validate_for_inpainting(self) -> None:
        """Raise unless the mask has both painted (hole) and known pixels.

        Raises
        ------
        BadInputError
            No mask, nothing painted (all ones), or everything painted (no
            known pixel left to fit).
        """
        if self.mask is None:
            raise BadInputError("inpainting needs a mask but none was given")
        if bool((self.mask >= 1).all()):
            raise BadInputError("the mask has no painted pixels")
        if bool((self.mask <= 0).all()):
            raise BadInputError("the mask covers the whole image, so no pixel is left to fit")

    # -- the two paths ------------------------------------------------------------------------

    def generator_path(self, x: torch.Tensor) -> torch.Tensor:
        """ϕ applied to generator outputs (differentiable).

        Parameters
        ----------
        x : torch.Tensor
            Shape ``(N, 3, H, W)``, values in [-1, 1], any float dtype and device.

        Returns
        -------
        torch.Tensor
            ϕ(x), shape ``(N, 3, H, W)``, same dtype and device; ``x`` itself for
            the identity.
        """
        _check_image(x)
        self._check_mask_fits(x)
        if self.sr_factor is not None:
            x = upsample_bilinear(downsample_generator_path(x, self.sr_factor), self.sr_factor)
        return self._gray_then_mask(x)

    def target_path(self, x: torch.Tensor) -> torch.Tensor:
        """ϕ applied to the target image (and to latent-search candidates).

        Parameters
        ----------
        x : torch.Tensor
            Shape ``(N, 3, H, W)``, values in [-1, 1].

        Returns
        -------
        torch.Tensor
            x̂ = ϕ(x), shape ``(N, 3, H, W)``, same dtype and device. With SR the
            resampling goes through PIL and the result carries no gradient.
        """
        _check_image(x)
        self._check_mask_fits(x)
        if self.sr_factor is not None:
            x = upsample_bilinear(downsample_target_path(x, self.sr_factor), self.sr_factor)
        return self._gray_then_mask(x)

    def target_from_low_resolution(self, x_low: torch.Tensor) -> torch.Tensor:
        """x̂ from a low-resolution image the user supplied (no synthetic downsampling).

        Parameters
        ----------
        x_low : torch.Tensor
            Shape ``(N, 3, H/f, W/f)``, values in [-1, 1], where f is
            ``sr_factor`` and H×W the model resolution.

        Returns
        -------
        torch.Tensor
            Bilinear ×f of ``x_low``, then gray and mask as configured; shape
            ``(N, 3, H, W)``, same dtype and device (method note §4.3).
        """
        if self.sr_factor is None:
            raise BadInputError("a low-resolution target needs a degradation with a downsampling factor")
        _check_image(x_low, name="low-resolution image")
        if self.mask is not None:
            mask_height, mask_width = self.mask.shape[-2:]
            expected = (mask_height // self.sr_factor, mask_width // self.sr_factor)
            if tuple(x_low.shape[-2:]) != expected:
                raise BadInputError(
                    f"the low-resolution image is {_format_size(*x_low.shape[-2:])} but the "
                    f"{_format_size(mask_height, mask_width)} mask at ×{self.sr_factor} needs "
                    f"{_format_size(*expected)}"
                )
        upsampled = upsample_bilinear(x_low, self.sr_factor)
        self._check_mask_fits(upsampled)
        return self._gray_then_mask(upsampled)

    # -- internals ----------------------------------------------------------------------------

    def _gray_then_mask(self, x: torch.Tensor) -> torch.Tensor:
        if self.grayscale:
            x = rgb_to_gray(x)
        if self.mask is not None:
            x = x * self.mask.to(device=x.device, dtype=x.dtype)
        return x

    def _check_mask_fits(self, x: torch.Tensor) -> None:
        if self.mask is None:
            return
        mask_batch, _, mask_height, mask_width = self.mask.shape
        if self.mask.shape[-2:] != x.shape[-2:]:
            raise BadInputError(
                f"mask is {_format_size(mask_height, mask_width)} but the image is "
                f"{_format_size(*x.shape[-2:])}"
            )
        if mask_batch not in (1, x.shape[0]):
            raise BadInputError(f"the mask holds {mask_batch} masks but the batch has {x.shape[0]} images")

    # -- dunder ---------------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Degradation):
            return NotImplemented
        if (self.grayscale, self.sr_factor) != (other.grayscale, other.sr_factor):
            return False
        if self.mask is None or other.mask is None:
            return self.mask is None and other.mask is None
        return self.mask.shape == other.mask.shape and bool(
            torch.equal(self.mask.cpu().float(), other.mask.cpu().float())
        )

    def __hash__(self) -> int:
        mask_shape = None if self.mask is None else tuple(self.mask.shape)
        return hash((self.grayscale, self.sr_factor, mask_shape))

    def __repr__(self) -> str:
        if self.mask is None:
            mask = "None"
        else:
            shape = "×".join(str(s) for s in self.mask.shape)
            mask = f"<{shape} {self.mask.dtype} mask on {self.mask.device}>"
        return f"Degradation(grayscale={self.grayscale}, sr_factor={self.sr_factor}, mask={mask})"


def _validated_mask(mask: object) -> torch.Tensor:
    """Check a known-pixel mask and bring it to ``(N, 1, H, W)`` float."""
    if not isinstance(mask, torch.Tensor):
        raise BadInputError(f"the mask must be a torch.Tensor, not {type(mask).__name__}")
    if mask.ndim == 2:
        mask = mask.reshape(1, 1, *mask.shape)
    if mask.ndim != 4 or mask.shape[1] != 1:
        raise BadInputError(
            f"the mask must have shape (N, 1, H, W) or (H, W) but has shape {tuple(mask.shape)}"
        )
    if mask.dtype == torch.bool:
        mask = mask.to(torch.float32)
    elif not mask.is_floating_point():
        raise BadInputError(
            f"the mask must be a float or bool tensor with values in [0, 1], not {mask.dtype}"
        )
    if mask.numel() == 0:
        raise BadInputError(f"the mask is empty (shape {tuple(mask.shape)})")
    low, high = float(mask.min()), float(mask.max())
    if not (math.isfinite(low) and math.isfinite(high)) or low < 0 or high > 1:
        raise BadInputError(f"mask values must lie in [0, 1] but range from {low:g} to {high:g}")
    return mask


# --------------------------------------------------------------------------------------------
# Task presets
# --------------------------------------------------------------------------------------------


def degradation_for_task(
    task: str,
    *,
    resolution: int,
    mask: torch.Tensor | None = None,
    sr_factor: int | None = None,
    grayscale: bool | None = None,
) -> Degradation:
    """The degradation ϕ a DGP task uses.

    Parameters
    ----------
    task : str
        One of ``colorize``, ``inpaint``, ``sr``, ``hybrid``, ``reconstruct``,
        ``defend``.
    resolution : int
        Model resolution H = W in pixels (128 or 256 for the released models).
    mask : torch.Tensor or None
        Known-pixel mask for ``inpaint``/``hybrid``, ``(N or 1, 1, H, W)`` or
        ``(H, W)``, 1 = known. None means the reference centred square.
    sr_factor : int or None
        Downsampling factor for ``sr`` (default 4) or ``hybrid``.
    grayscale : bool or None
        Graying for ``hybrid``; for the other tasks it may only repeat what the
        task implies.

    Returns
    -------
    Degradation

    Notes
    -----
    * ``colorize``: gray (§4.1). ``inpaint``: mask (§4.2). ``sr``: ×f
      resampling (§4.3). ``reconstruct``, ``defend``: identity (§4.5).
    * ``hybrid`` with none of ``mask``/``sr_factor``/``grayscale`` given is the
      reference: ×2 + gray + centred mask (§4.4). Given any of them, it is
      exactly the composition they name (``grayscale=False`` turns graying
      off), in the fixed order SR → gray → mask.
    * Options a task cannot use raise rather than being ignored.
    """
    if task not in DEGRADATION_TASKS:
        raise BadInputError(f"unknown task {task!r}; expected one of {', '.join(DEGRADATION_TASKS)}")
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise BadInputError(f"the resolution must be a positive integer, not {resolution!r}")

    def refuse(option: str) -> None:
        raise BadInputError(f"the {task} task does not take {option}")

    if task == "colorize":
        if mask is not None:
            refuse("a mask")
        if sr_factor is not None:
            refuse("a downsampling factor")
        if grayscale is False:
            refuse("grayscale=False")
        degradation = Degradation(grayscale=True)
    elif task == "inpaint":
        if sr_factor is not None:
            refuse("a downsampling factor")
        if grayscale:
            refuse("grayscale=True")
        chosen_mask = mask if mask is not None else centered_square_mask(resolution, resolution)
        degradation = Degradation(mask=chosen_mask)
    elif task == "sr":
        if mask is not None:
            refuse("a mask")
        if grayscale:
            refuse("grayscale=True")
        degradation = Degradation(sr_factor=4 if sr_factor is None else sr_factor)
    elif task == "hybrid":
        if mask is None and sr_factor is None and grayscale is None:
            degradation = Degradation(
                grayscale=True, sr_factor=2, mask=centered_square_mask(resolution, resolution)
            )
        else:
            degradation = Degradation(grayscale=bool(grayscale), sr_factor=sr_factor, mask=mask)
            if degradation.is_identity:
                raise BadInputError(
                    "the hybrid task needs at least one of grayscale, a downsampling factor or a mask"
                )
    else:  # reconstruct, defend: ϕ is the identity
        if mask is not None:
            refuse("a mask")
        if sr_factor is not None:
            refuse("a downsampling factor")
        if grayscale:
            refuse("grayscale=True")
        degradation = Degradation()

    if degradation.sr_factor is not None and resolution % degradation.sr_factor:
        raise BadInputError(
            f"the resolution {resolution} is not divisible by the downsampling factor {degradation.sr_factor}"
        )
    if degradation.mask is not None:
        mask_height, mask_width = degradation.mask.shape[-2:]
        if (mask_height, mask_width) != (resolution, resolution):
            raise BadInputError(
                f"mask is {_format_size(mask_height, mask_width)} but the image is "
                f"{_format_size(resolution, resolution)}"
            )
        degradation.validate_for_inpainting()
    return degradation
