"""Conversions between the engine's images (H×W×3 uint8) and the model's tensors (torch).

Kept apart from image I/O so that loading, saving and compositing photos never import torch.
"""

from __future__ import annotations

import numpy as np
import torch

from engine.errors import BadInputError
from engine.tasks import check_rgb_uint8

__all__ = ["to_tensor", "to_uint8"]



def to_tensor(
    rgb_uint8: np.ndarray, *, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """Turn an H×W×3 uint8 image into the model's (1, 3, H, W) tensor in [-1, 1].

    Parameters
    ----------
    rgb_uint8 : np.ndarray
        H×W×3 uint8 in [0, 255].
    dtype : torch.dtype, keyword-only
        Floating dtype of the result (float32 by default).
    device : torch.device or str, optional, keyword-only
        Where to put the result.

    Returns
    -------
    torch.Tensor
        (1, 3, H, W), value = (v / 255 − 0.5) / 0.5, so 0 → −1 and 255 → 1 (the reference
        ``ToTensor`` + ``Normalize(0.5, 0.5)``, computed in float32).
    """
    rgb_uint8 = check_rgb_uint8(rgb_uint8, "to_tensor's input")
    if not dtype.is_floating_point:
        raise BadInputError(f"to_tensor needs a floating dtype, got {dtype}.")
    # Copy: the caller's array stays independent of the tensor (and may be read-only).
    image = torch.from_numpy(np.array(rgb_uint8, dtype=np.uint8, copy=True))
    image_bchw = image.permute(2, 0, 1).unsqueeze(0).to(torch.float32).div_(255.0).sub_(0.5).div_(0.5)
    return image_bchw.to(device=device, dtype=dtype).contiguous()


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """Turn a model tensor in [-1, 1] into an H×W×3 uint8 image.

    Parameters
    ----------
    image : torch.Tensor
        (1, 3, H, W) or (3, H, W), any floating dtype (float16/bfloat16 included), any
        device. Values outside [-1, 1] are clamped.

    Returns
    -------
    np.ndarray
        H×W×3 uint8 C-contiguous, ``round((x + 1) · 127.5)`` clamped to [0, 255].

    Raises
    ------
    BadInputError
        For another shape, a non-floating dtype, or NaN/infinite values.
    """
    if not isinstance(image, torch.Tensor):
        raise BadInputError(f"to_uint8 needs a torch tensor, got {type(image).__name__}.")
    if image.dim() == 4 and image.shape[0] == 1:
        image = image[0]
    if image.dim() != 3 or image.shape[0] != 3:
        raise BadInputError(f"to_uint8 needs a (1, 3, H, W) or (3, H, W) tensor, got {tuple(image.shape)}.")
    if not image.dtype.is_floating_point:
        raise BadInputError(f"to_uint8 needs a floating tensor in [-1, 1], got {image.dtype}.")
    values = image.detach().to(device="cpu", dtype=torch.float32)
    if not bool(torch.isfinite(values).all()):
        raise BadInputError("to_uint8 received NaN or infinite values.")
    scaled = values.add(1.0).mul_(127.5).round_().clamp_(0.0, 255.0).to(torch.uint8)
    return np.ascontiguousarray(scaled.permute(1, 2, 0).numpy())
