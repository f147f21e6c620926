"""Conversions between the engine's NumPy images and Qt images.

Arrays cross threads; ``QImage`` objects built here are deep copies that own
their pixels (never views of a NumPy buffer that could be freed under Qt).
``QPixmap`` is only made by widgets, on the GUI thread.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage


def rgb_to_qimage(rgb: np.ndarray) -> QImage:
    """Copy an RGB array into a new ``QImage``.

    Parameters
    ----------
    rgb : numpy.ndarray
        ``(H, W, 3)`` ``uint8`` in [0, 255]. A ``(H, W)`` array is taken as grayscale.

    Returns
    -------
    QImage
        ``Format_RGB888`` (or ``Format_Grayscale8``), owning its own copy of the pixels.
    """
    if rgb.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {rgb.dtype}")
    if rgb.ndim == 2:
        gray = np.ascontiguousarray(rgb)
        height, width = gray.shape
        return QImage(gray.data, width, height, gray.strides[0], QImage.Format.Format_Grayscale8).copy()
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 image, got shape {rgb.shape}")
    contiguous = np.ascontiguousarray(rgb)
    height, width = contiguous.shape[:2]
    # ``copy()`` detaches the QImage from the NumPy buffer it was wrapped around.
    return QImage(contiguous.data, width, height, contiguous.strides[0], QImage.Format.Format_RGB888).copy()


def rgba_to_qimage(rgb: np.ndarray, alpha: np.ndarray) -> QImage:
    """Copy an RGB array plus an alpha plane into a new ``QImage``.

    Parameters
    ----------
    rgb : numpy.ndarray
        ``(H, W, 3)`` ``uint8``.
    alpha : numpy.ndarray
        ``(H, W)`` ``uint8``, 255 = opaque.

    Returns
    -------
    QImage
        ``Format_RGBA8888`` (straight alpha), owning its pixels.
    """
    if alpha.shape != rgb.shape[:2]:
        raise ValueError(f"alpha {alpha.shape} does not match the image {rgb.shape[:2]}")
    rgba = np.ascontiguousarray(np.dstack([rgb, alpha]).astype(np.uint8, copy=False))
    height, width = rgba.shape[:2]
    return QImage(rgba.data, width, height, rgba.strides[0], QImage.Format.Format_RGBA8888).copy()


def qimage_to_rgb(image: QImage) -> np.ndarray:
    """Copy a ``QImage`` into an RGB array.

    Transparent pixels are composited over nothing: alpha is dropped (the
    colour channels are kept as stored, un-premultiplied).

    Returns
    -------
    numpy.ndarray
        ``(H, W, 3)`` ``uint8`` in [0, 255], C-contiguous, owned by the caller.
    """
    converted = image.convertToFormat(QImage.Format.Format_RGB888)
    width, height = converted.width(), converted.height()
    if width == 0 or height == 0:
        raise ValueError("the image is empty")
    rows = np.frombuffer(converted.constBits(), dtype=np.uint8).reshape(height, converted.bytesPerLine())
    return rows[:, : width * 3].reshape(height, width, 3).copy()


def qimage_alpha(image: QImage) -> np.ndarray | None:
    """The alpha channel of ``image`` as ``(H, W)`` ``uint8``, or None when it has none."""
    if not image.hasAlphaChannel():
        return None
    converted = image.convertToFormat(QImage.Format.Format_RGBA8888)
    width, height = converted.width(), converted.height()
    rows = np.frombuffer(converted.constBits(), dtype=np.uint8).reshape(height, converted.bytesPerLine())
    return rows[:, : width * 4].reshape(height, width, 4)[:, :, 3].copy()


def image_size_text(width: int, height: int) -> str:
    """``"640 × 480"`` for status lines."""
    return f"{width} \u00d7 {height}"
