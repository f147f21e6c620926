"""Loading BigGAN generator/discriminator pairs from disk or state dicts.

Two on-disk formats are read:

* BigGAN-PyTorch ``.pth`` state dicts (the released DGP/BigGAN weights), read
  with ``torch.load(..., weights_only=True)`` so that a file can never run
  code while it is loaded;
* safetensors files written by this project, whose metadata carries the
  architecture and class list as JSON.

The architecture (resolution, widths, classes, attention positions, latent
size) is inferred from the tensor shapes, then the key set is checked
exactly against a network built with that architecture, so a checkpoint of
another architecture or a truncated file is refused with one sentence.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

from engine.biggan import (
    _D_ARCH,
    _G_ARCH,
    BigGANConfig,
    Discriminator,
    Generator,
    discriminator_block_resolutions,
    generator_block_resolutions,
)
from engine.errors import BadInputError

StateSource = str | os.PathLike | Mapping[str, torch.Tensor]

# Keys the DGP generator owns that BigGAN-PyTorch files lack (IN switch).
_MODEL_ONLY_KEY = re.compile(r"^blocks\.\d+\.0\.in[12]\.(weight|bias)$")
_RESOLUTION_BY_G_BLOCKS = {len(arch[0]): res for res, arch in _G_ARCH.items()}


def _describe(source: StateSource, role: str) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return f"the {role} state dict"


def read_state_dict(source: StateSource, *, role: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a state dict and its metadata (empty for ``.pth``) from a path or mapping."""
    if not isinstance(source, (str, os.PathLike)):
        return dict(source), {}
    path = Path(source)
    if not path.exists():
        raise BadInputError(f"{path}: the {role} checkpoint file does not exist.")
    if path.is_dir():
        raise BadInputError(f"{path}: expected a {role} checkpoint file, found a folder.")
    if path.stat().st_size == 0:
        raise BadInputError(f"{path}: the {role} checkpoint file is empty.")
    with open(path, "rb") as handle:
        head = handle.read(16)
    if path.suffix == ".safetensors" or (head[:8] != b"PK\x03\x04"[:8] and _looks_like_safetensors(head)):
        return _read_safetensors(path, role)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise BadInputError(
            f"{path}: refused to load the {role} checkpoint because it contains code or "
            f"objects other than tensors, which could run programs on this computer."
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError):
        raise BadInputError(
            f"{path}: the {role} checkpoint is truncated or not a PyTorch checkpoint file."
        ) from None
    if isinstance(loaded, Mapping) and "state_dict" in loaded and isinstance(loaded["state_dict"], Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping) or not all(torch.is_tensor(v) for v in loaded.values()):
        raise BadInputError(f"{path}: the {role} checkpoint is not a state dict of tensors.")
    return {k.removeprefix("module."): v for k, v in loaded.items()}, {}


def _looks_like_safetensors(head: bytes) -> bool:
    if len(head) < 9:
        return False
    header_length = int.from_bytes(head[:8], "little")
    return 0 < header_length < 100_000_000 and head[8:9] == b"{"


def _read_safetensors(path: Path, role: str) -> tuple[dict[str, torch.Tensor], dict]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as error:
        raise BadInputError(
            f"{path}: the {role} checkpoint is truncated or not a safetensors file ({error})."
        ) from None
    parsed: dict = {}
    if "config" in metadata:
        try:
            parsed = json.loads(metadata["config"])
        except json.JSONDecodeError:
            raise BadInputError(f"{path}: the {role} checkpoint's config metadata is not JSON.") from None
    return tensors, parsed


def _block_indices(state: Mapping[str, torch.Tensor], pattern: str) -> list[int]:
    regex = re.compile(pattern)
    return sorted({int(m.group(1)) for k in state if (m := regex.match(k))})


def infer_config(
    g_state: Mapping[str, torch.Tensor],
    d_state: Mapping[str, torch.Tensor] | None,
    *,
    g_name: str = "the generator",
    d_name: str = "the discriminator",
    metadata: Mapping | None = None,
) -> BigGANConfig:
    """Infer the architecture of a BigGAN pair from its tensor shapes."""
    required = ("shared.weight", "linear.weight", "output_layer.2.weight")
    missing = [k for k in required if k not in g_state]
    if missing:
        if "embed.weight" in g_state:
            raise BadInputError(f"{g_name}: this file is a discriminator, not a generator.")
        raise BadInputError(
            f"{g_name}: not a BigGAN generator checkpoint (missing {', '.join(missing)})."
        )
    blocks = _block_indices(g_state, r"^blocks\.(\d+)\.0\.conv1\.weight$")
    resolution = _RESOLUTION_BY_G_BLOCKS.get(len(blocks))
    if resolution is None:
        raise BadInputError(f"{g_name}: a generator with {len(blocks)} blocks matches no BigGAN resolution.")
    out_mult = _G_ARCH[resolution][1]
    in_mult = _G_ARCH[resolution][0]
    g_ch = g_state["output_layer.2.weight"].shape[1] // out_mult[-1]
    n_classes, shared_dim = g_state["shared.weight"].shape
    linear_out, chunk = g_state["linear.weight"].shape
    bottom_width = int(round((linear_out / (in_mult[0] * g_ch)) ** 0.5))
    slots = len(blocks) + 1
    block_res = generator_block_resolutions(resolution)
    g_attention = tuple(
        block_res[i] for i in _block_indices(g_state, r"^blocks\.(\d+)\.1\.gamma$")
    )
    d_ch = g_ch
    d_attention = g_attention
    if d_state is not None:
        if "blocks.0.0.conv1.weight" not in d_state or "embed.weight" not in d_state:
            if "shared.weight" in d_state:
                raise BadInputError(f"{d_name}: this file is a generator, not a discriminator.")
            raise BadInputError(f"{d_name}: not a BigGAN discriminator checkpoint.")
        d_ch = d_state["blocks.0.0.conv1.weight"].shape[0] // _D_ARCH[resolution][1][0]
        d_res = discriminator_block_resolutions(resolution)
        d_blocks = _block_indices(d_state, r"^blocks\.(\d+)\.0\.conv1\.weight$")
        if len(d_blocks) != len(d_res):
            raise BadInputError(
                f"{d_name}: the discriminator has {len(d_blocks)} blocks but the generator "
                f"is a {resolution} px model needing {len(d_res)}; they are not a pair."
            )
        d_attention = tuple(
            d_res[i] for i in _block_indices(d_state, r"^blocks\.(\d+)\.1\.gamma$")
        )
        d_classes = d_state["embed.weight"].shape[0]
        if d_classes != n_classes:
            raise BadInputError(
                f"{d_name}: the discriminator knows {d_classes} classes but the generator "
                f"{n_classes}; they are not a pair."
            )
    meta = dict(metadata or {})
    return BigGANConfig(
        resolution=resolution,
        g_ch=int(g_ch),
        d_ch=int(d_ch),
        n_classes=int(n_classes),
        dim_z=int(chunk * slots),
        shared_dim=int(shared_dim),
        g_attention=g_attention,
        d_attention=d_attention,
        bottom_width=bottom_width,
        class_names=tuple(meta.get("class_names", ())),
        class_imagenet_indices=tuple(meta.get("class_imagenet_indices", ())),
    )


def _load_into(
    module: torch.nn.Module, state: Mapping[str, torch.Tensor], name: str, *, optional=None
) -> None:
    expected = module.state_dict()
    optional = optional or (lambda key: False)
    missing = [k for k in expected if k not in state and not optional(k)]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        raise BadInputError(
            f"{name}: the checkpoint does not match a BigGAN of this architecture: "
            f"{' and '.join(parts)} entries."
        )
    for key, value in state.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise BadInputError(
                f"{name}: entry {key} has shape {tuple(value.shape)} where this architecture "
                f"needs {tuple(expected[key].shape)}; it is a checkpoint of another architecture."
            )
    module.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)


def build_models(config: BigGANConfig, *, device: str | torch.device = "cpu") -> tuple[Generator, Discriminator]:
    """Build an (uninitialised) G and D for ``config``."""
    return Generator(config).to(device), Discriminator(config).to(device)


def load_biggan(
    g: StateSource,
    d: StateSource | None,
    *,
    device: str | torch.device = "cpu",
    allow_missing_discriminator: bool = False,
) -> tuple[Generator, Discriminator | None]:
    """Load a BigGAN pair; architecture inferred from the tensor shapes.

    Parameters
    ----------
    g, d : path or state dict
        Generator and discriminator in BigGAN-PyTorch key format (``.pth``
        read with ``weights_only=True``) or this project's safetensors.
    device : torch device for the returned modules.
    allow_missing_discriminator : bool
        DGP needs D; pass True to accept ``d=None`` (MSE-only mode).

    Returns
    -------
    (G, D) in eval mode. ``G(z, y)`` takes a latent batch and class indices
    or embeddings and returns images in [-1, 1]; ``D.features(x)`` returns
    the DGP feature list.
    """
    g_name = _describe(g, "generator")
    g_state, g_meta = read_state_dict(g, role="generator")
    if d is None:
        if not allow_missing_discriminator:
            raise BadInputError(
                f"{g_name}: no discriminator was given; DGP measures its loss in the "
                f"discriminator's features, so it needs the matching D file too."
            )
        d_state, d_name = None, "the discriminator"
    else:
        d_name = _describe(d, "discriminator")
        d_state, d_meta = read_state_dict(d, role="discriminator")
        g_meta = g_meta or d_meta
    config = infer_config(g_state, d_state, g_name=g_name, d_name=d_name, metadata=g_meta)
    generator = Generator(config)
    _load_into(generator, g_state, g_name, optional=lambda k: bool(_MODEL_ONLY_KEY.match(k)))
    generator.eval().to(device)
    discriminator = None
    if d_state is not None:
        discriminator = Discriminator(config)
        _load_into(discriminator, d_state, d_name)
        discriminator.eval().to(device)
    return generator, discriminator


def save_biggan_safetensors(
    module: torch.nn.Module, path: str | os.PathLike, config: BigGANConfig, *,
    dtype: torch.dtype = torch.float16, extra_metadata: Mapping[str, str] | None = None,
) -> None:
    """Write a G or D as safetensors with the architecture in the metadata (atomic)."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {
        k: (v.to(dtype) if v.is_floating_point() else v).detach().contiguous().cpu().clone()
        for k, v in module.state_dict().items()
    }
    metadata = {"config": json.dumps(config.to_json_dict()), "format": "dgp-studio-biggan"}
    metadata.update(extra_metadata or {})
    temporary = path.with_name(path.name + ".tmp")
    save_file(tensors, str(temporary), metadata=metadata)
    os.replace(temporary, path)
