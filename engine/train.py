"""Training the built-in class-conditional BigGAN on Tiny ImageNet shards.

``python -m engine.train --data DIR --out RUN_DIR`` (also ``dgp-studio train``).
The recipe is BigGAN's: hinge loss, spectral norm in G and D, orthogonal
init, Adam with betas (0, 0.999), an exponential moving average of G, a
shared class embedding and hierarchical z. Because Tiny ImageNet is small,
real and fake images go through DiffAugment (colour, translation, cutout;
Zhao et al. 2020) before D.

On CPUs with AMX-BF16 the heavy convolutions run under bf16 autocast with
channels_last tensors; parameters, optimiser state and losses stay fp32.

A run folder holds ``resume.safetensors`` (G, EMA-G and D weights in fp16,
plus the step and both configs as metadata, rewritten atomically), an
optional ``optimizer.pt`` with Adam moments (fp32, not needed to resume),
``samples.png`` (fixed z, one row per class) and ``log.csv``.
"""

from __future__ import annotations

import argparse
import copy
import csv
import io
import json
import math
import sys
import tarfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from engine.biggan import BigGANConfig, Discriminator, Generator, orthogonal_init_
from engine.checksums import sha256_file
from engine.devices import select_autocast_dtype
from engine.errors import BadInputError
from engine.files import atomic_path, write_bytes_atomically

RESUME_FILE = "resume.safetensors"
OPTIMIZER_FILE = "optimizer.pt"
SAMPLES_FILE = "samples.png"
LOG_FILE = "log.csv"


@dataclass(frozen=True)
class TrainingConfig:
    resolution: int = 64
    g_ch: int = 16                 # channel multiplier of G
    d_ch: int = 16                 # channel multiplier of D
    batch: int = 32                # images per G step (and per D step)
    steps: int = 30_000            # G steps to reach
    d_steps_per_g_step: int = 1
    g_lr: float = 1e-4
    d_lr: float = 4e-4
    adam_eps: float = 1e-6
    ema_decay: float = 0.999
    ema_start: int = 1_000         # G steps before the EMA starts averaging
    diffaugment: str = "color,translation,cutout"
    attention: int = 16            # resolution of the self-attention block in G and D
    dim_z: int = 120
    shared_dim: int = 128
    seed: int = 0
    checkpoint_minutes: float = 15.0
    log_every: int = 50
    precision: str = "auto"        # auto | bf16 | fp32
    sample_classes: tuple[int, ...] = field(default=(0, 9, 23, 45, 67, 89, 111, 133, 155, 177))
    sample_columns: int = 8

    def model_config(self, classes: list[dict]) -> BigGANConfig:
        return BigGANConfig(
            resolution=self.resolution,
            g_ch=self.g_ch,
            d_ch=self.d_ch,
            n_classes=len(classes),
            dim_z=self.dim_z,
            shared_dim=self.shared_dim,
            g_attention=(self.attention,),
            d_attention=(self.attention,),
            class_names=tuple(c["name"] for c in classes),
            class_imagenet_indices=tuple(int(c["imagenet_index"]) for c in classes),
        )


# --------------------------------------------------------------------------
# Data


def read_classes(data_dir: Path) -> list[dict]:
    path = data_dir / "classes.json"
    if not path.exists():
        raise BadInputError(f"{path}: the data folder has no classes.json.")
    try:
        classes = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise BadInputError(f"{path}: classes.json is not valid JSON ({error}).") from None
    return classes


def load_shards(
    shard_paths: list[Path], classes: list[dict], *, resolution: int, limit: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode every JPEG in the tar shards in place into uint8 NHWC images and labels."""
    label_of = {c["wnid"]: i for i, c in enumerate(classes)}
    images: list[np.ndarray] = []
    labels: list[int] = []
    for shard in shard_paths:
        try:
            archive = tarfile.open(shard)  # noqa: SIM115 - closed by the `with archive` below
        except (tarfile.TarError, OSError) as error:
            raise BadInputError(f"{shard}: cannot read the tar shard ({error}).") from None
        with archive:
            for member in archive:
                if not member.isfile():
                    continue
                wnid = member.name.split("/")[0]
                if wnid not in label_of:
                    continue
                data = archive.extractfile(member).read()
                with Image.open(io.BytesIO(data)) as image:
                    image = image.convert("RGB")
                    if image.size != (resolution, resolution):
                        image = image.resize((resolution, resolution), Image.Resampling.BICUBIC)
                    images.append(np.asarray(image, dtype=np.uint8))
                labels.append(label_of[wnid])
                if limit is not None and len(images) >= limit:
                    break
        if limit is not None and len(images) >= limit:
            break
    if not images:
        raise BadInputError(f"{shard_paths[0].parent}: the shards hold no images of the listed classes.")
    return torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.long)


def find_training_shards(data_dir: Path) -> list[Path]:
    shards = sorted(data_dir.glob("train-*.tar"))
    if not shards:
        raise BadInputError(f"{data_dir}: no train-*.tar shards in the data folder.")
    return shards


# --------------------------------------------------------------------------
# DiffAugment (Zhao et al., "Differentiable Augmentation for Data-Efficient GAN
# Training", 2020): the same random transform family for real and fake images,
# differentiable so G receives gradients through it.


def diff_augment(x: torch.Tensor, policy: str, generator: torch.Generator | None = None) -> torch.Tensor:
    if not policy:
        return x
    n = x.shape[0]

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator, device=x.device, dtype=x.dtype)

    for op in policy.split(","):
        if op == "color":
            x = x + (rand(n, 1, 1, 1) - 0.5)
            mean = x.mean(dim=1, keepdim=True)
            x = (x - mean) * (rand(n, 1, 1, 1) * 2) + mean
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = (x - mean) * (rand(n, 1, 1, 1) + 0.5) + mean
        elif op == "translation":
            x = _translate(x, ratio=0.125, generator=generator)
        elif op == "cutout":
            x = _cutout(x, ratio=0.5, generator=generator)
        else:
            raise ValueError(f"unknown DiffAugment op {op!r}")
    return x


def _translate(x: torch.Tensor, *, ratio: float, generator: torch.Generator | None) -> torch.Tensor:
    n, _, h, w = x.shape
    shift_h, shift_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-shift_h, shift_h + 1, (n, 1, 1), generator=generator, device=x.device)
    dx = torch.randint(-shift_w, shift_w + 1, (n, 1, 1), generator=generator, device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    src_rows = (rows + dy + 1).clamp(0, h + 1).expand(n, h, w)
    src_cols = (cols + dx + 1).clamp(0, w + 1).expand(n, h, w)
    padded = F.pad(x, [1, 1, 1, 1])
    batch = torch.arange(n, device=x.device).view(n, 1, 1).expand(n, h, w)
    return padded.permute(0, 2, 3, 1)[batch, src_rows, src_cols].permute(0, 3, 1, 2)


def _cutout(x: torch.Tensor, *, ratio: float, generator: torch.Generator | None) -> torch.Tensor:
    n, _, h, w = x.shape
    size_h, size_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    off_y = torch.randint(0, h + (1 - size_h % 2), (n, 1, 1), generator=generator, device=x.device)
    off_x = torch.randint(0, w + (1 - size_w % 2), (n, 1, 1), generator=generator, device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (
        (rows >= off_y - size_h // 2) & (rows < off_y - size_h // 2 + size_h)
        & (cols >= off_x - size_w // 2) & (cols < off_x - size_w // 2 + size_w)
    )
    return x * (~inside).unsqueeze(1).to(x.dtype)


# --------------------------------------------------------------------------
# Training


class Trainer:
    """Owns G, EMA-G, D, their optimisers and the data; one ``step()`` per G update."""

    def __init__(
        self, config: TrainingConfig, images: torch.Tensor, labels: torch.Tensor,
        classes: list[dict], *, device: str | torch.device = "cpu",
    ) -> None:
        self.config = config
        self.device = torch.device(device)
        self.classes = classes
        self.model_config = config.model_config(classes)
        torch.manual_seed(config.seed)
        self.G = Generator(self.model_config)
        self.D = Discriminator(self.model_config)
        orthogonal_init_(self.G)
        orthogonal_init_(self.D)
        self.G.to(self.device).train()
        self.D.to(self.device).train()
        self.G.to(memory_format=torch.channels_last)
        self.D.to(memory_format=torch.channels_last)
        self.G_ema = copy.deepcopy(self.G).eval()
        self.G_ema.requires_grad_(False)
        self.g_optimizer = torch.optim.Adam(
            self.G.parameters(), lr=config.g_lr, betas=(0.0, 0.999), eps=config.adam_eps
        )
        self.d_optimizer = torch.optim.Adam(
            self.D.parameters(), lr=config.d_lr, betas=(0.0, 0.999), eps=config.adam_eps
        )
        self.images = images  # uint8 NHWC on CPU
        self.labels = labels
        self.step_count = 0
        self.autocast_dtype = select_autocast_dtype(config.precision, self.device)
        self.data_generator = torch.Generator().manual_seed(config.seed + 1)
        self.augment_generator = torch.Generator().manual_seed(config.seed + 2)

    # -- batches -----------------------------------------------------------
    def _real_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.randint(0, self.images.shape[0], (self.config.batch,), generator=self.data_generator)
        x = self.images[index].to(self.device).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
        flip = torch.rand(self.config.batch, generator=self.data_generator) < 0.5
        x[flip] = x[flip].flip(3)
        return x.contiguous(memory_format=torch.channels_last), self.labels[index].to(self.device)

    def _latents(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.randn(n, self.G.dim_z, device=self.device)
        y = torch.randint(0, self.model_config.n_classes, (n,), device=self.device)
        return z, y

    def _autocast(self):
        if self.autocast_dtype is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.config.diffaugment, self.augment_generator)

    # -- one G step (after d_steps_per_g_step D steps) ----------------------
    def step(self) -> dict[str, float]:
        config = self.config
        self.G.train()
        self.D.train()
        d_real_total = d_fake_total = 0.0
        for _ in range(config.d_steps_per_g_step):
            real, real_y = self._real_batch()
            z, fake_y = self._latents(config.batch)
            with torch.no_grad(), self._autocast():
                fake = self.G(z, self.G.shared(fake_y))
            with self._autocast():
                both = self._augment(torch.cat([real, fake.float()]))
                logits, _ = self.D(both, torch.cat([real_y, fake_y]))
            logits = logits.float()
            d_real, d_fake = logits[: config.batch], logits[config.batch :]
            loss_real = F.relu(1.0 - d_real).mean()
            loss_fake = F.relu(1.0 + d_fake).mean()
            self.d_optimizer.zero_grad(set_to_none=True)
            (loss_real + loss_fake).backward()
            self.d_optimizer.step()
            d_real_total += loss_real.item()
            d_fake_total += loss_fake.item()

        self.D.requires_grad_(False)
        z, fake_y = self._latents(config.batch)
        with self._autocast():
            fake = self.G(z, self.G.shared(fake_y))
            logits, _ = self.D(self._augment(fake.float()), fake_y)
        g_loss = -logits.float().mean()
        self.g_optimizer.zero_grad(set_to_none=True)
        g_loss.backward()
        self.g_optimizer.step()
        self.D.requires_grad_(True)
        self.step_count += 1
        self._update_ema()
        return {
            "d_loss_real": d_real_total / config.d_steps_per_g_step,
            "d_loss_fake": d_fake_total / config.d_steps_per_g_step,
            "g_loss": g_loss.item(),
        }

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = self.config.ema_decay if self.step_count >= self.config.ema_start else 0.0
        ema_state = self.G_ema.state_dict()
        for key, value in self.G.state_dict().items():
            if value.is_floating_point():
                ema_state[key].mul_(decay).add_(value, alpha=1 - decay)
            else:
                ema_state[key].copy_(value)

    # -- persistence --------------------------------------------------------
    def save(self, run_dir: Path) -> Path:
        """Write the resumable fp16 state and the fp32 optimiser moments, atomically."""
        from safetensors.torch import save_file

        run_dir.mkdir(parents=True, exist_ok=True)
        tensors: dict[str, torch.Tensor] = {}
        for prefix, module in (("G.", self.G), ("G_ema.", self.G_ema), ("D.", self.D)):
            for key, value in module.state_dict().items():
                tensors[prefix + key] = value.detach().to(torch.float16).contiguous().cpu().clone()
        metadata = {
            "format": "dgp-studio-training",
            "step": str(self.step_count),
            "training_config": json.dumps(asdict(self.config)),
            "model_config": json.dumps(self.model_config.to_json_dict()),
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        path = run_dir / RESUME_FILE
        with atomic_path(path, overwrite=True) as temporary:
            save_file(tensors, str(temporary), metadata=metadata)
        optimizer_state = {
            "step": self.step_count,
            "g": self.g_optimizer.state_dict(),
            "d": self.d_optimizer.state_dict(),
        }
        with atomic_path(run_dir / OPTIMIZER_FILE, overwrite=True) as temporary:
            torch.save(optimizer_state, temporary)
        return path

    def load(self, run_dir: Path) -> None:
        from safetensors import safe_open
        from safetensors.torch import load_file

        path = run_dir / RESUME_FILE
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata()
        tensors = load_file(str(path))
        for prefix, module in (("G.", self.G), ("G_ema.", self.G_ema), ("D.", self.D)):
            state = {k[len(prefix):]: v.float() for k, v in tensors.items() if k.startswith(prefix)}
            module.load_state_dict(state, strict=True)
        self.step_count = int(metadata["step"])
        optimizer_path = run_dir / OPTIMIZER_FILE
        if optimizer_path.exists():
            saved = torch.load(optimizer_path, map_location="cpu", weights_only=True)
            if saved.get("step") == self.step_count:
                self.g_optimizer.load_state_dict(saved["g"])
                self.d_optimizer.load_state_dict(saved["d"])
                return
        # Moments were dropped (committed checkpoints carry weights only):
        # re-estimate them with zero-learning-rate steps so the first real
        # updates are not scaled by an empty second-moment estimate.
        self._warm_optimizer_moments(steps=20)

    def _warm_optimizer_moments(self, *, steps: int) -> None:
        saved_lrs = [(g, g["lr"]) for opt in (self.g_optimizer, self.d_optimizer) for g in opt.param_groups]
        for group, _lr in saved_lrs:
            group["lr"] = 0.0
        ema_state = {k: v.clone() for k, v in self.G_ema.state_dict().items()}
        step = self.step_count
        for _ in range(steps):
            self.step()
        self.step_count = step
        self.G_ema.load_state_dict(ema_state)
        for group, lr in saved_lrs:
            group["lr"] = lr

    @torch.no_grad()
    def sample_grid(self, path: Path) -> None:
        """Fixed z, one row per sample class, from the EMA generator."""
        config = self.config
        classes = [c for c in config.sample_classes if c < self.model_config.n_classes]
        generator = torch.Generator().manual_seed(1234)
        z = torch.randn(config.sample_columns, self.G.dim_z, generator=generator)
        rows = []
        for class_index in classes:
            y = torch.full((config.sample_columns,), class_index, dtype=torch.long)
            images = self.G_ema(z.to(self.device), self.G_ema.shared(y.to(self.device)))
            rows.append(images.float().cpu())
        write_image_grid(torch.stack(rows), path)


def write_image_grid(rows: torch.Tensor, path: Path, *, padding: int = 2) -> None:
    """Save a (rows, cols, 3, H, W) tensor in [-1, 1] as one PNG (atomically)."""
    n_rows, n_cols, _, height, width = rows.shape
    canvas = np.full(
        (n_rows * (height + padding) + padding, n_cols * (width + padding) + padding, 3), 255, np.uint8
    )
    pixels = ((rows.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 1, 3, 4, 2).numpy()
    for r in range(n_rows):
        for c in range(n_cols):
            top, left = padding + r * (height + padding), padding + c * (width + padding)
            canvas[top : top + height, left : left + width] = pixels[r, c]
    with atomic_path(path, overwrite=True) as temporary:
        Image.fromarray(canvas).save(temporary, format="PNG")


def read_run_config(run_dir: Path) -> TrainingConfig | None:
    from safetensors import safe_open

    path = run_dir / RESUME_FILE
    if not path.exists():
        return None
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    values = json.loads(metadata["training_config"])
    values["sample_classes"] = tuple(values["sample_classes"])
    return TrainingConfig(**values)


def train(
    config: TrainingConfig, data_dir: Path, run_dir: Path, *, resume: bool,
    device: str = "cpu", image_limit: int | None = None, log=print,
) -> Trainer:
    classes = read_classes(data_dir)
    start = time.time()
    images, labels = load_shards(
        find_training_shards(data_dir), classes, resolution=config.resolution, limit=image_limit
    )
    log(f"loaded {images.shape[0]} images of {len(classes)} classes in {time.time() - start:.1f} s")
    trainer = Trainer(config, images, labels, classes, device=device)
    if resume and (run_dir / RESUME_FILE).exists():
        trainer.load(run_dir)
        log(f"resumed from step {trainer.step_count}")
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / LOG_FILE
    new_log = not log_path.exists()
    with open(log_path, "a", newline="") as log_handle:
        writer = csv.writer(log_handle)
        if new_log:
            writer.writerow(["step", "time", "seconds_per_step", "d_loss_real", "d_loss_fake", "g_loss"])
        last_checkpoint = time.time()
        window_start, window_steps = time.time(), 0
        sums = {"d_loss_real": 0.0, "d_loss_fake": 0.0, "g_loss": 0.0}
        stop_requested = _install_stop_handler()
        while trainer.step_count < config.steps and not stop_requested():
            losses = trainer.step()
            for key in sums:
                sums[key] += losses[key]
            window_steps += 1
            if not all(math.isfinite(v) for v in losses.values()):
                raise RuntimeError(f"non-finite loss at step {trainer.step_count}: {losses}")
            if trainer.step_count % config.log_every == 0:
                seconds = (time.time() - window_start) / window_steps
                means = {k: v / window_steps for k, v in sums.items()}
                writer.writerow(
                    [trainer.step_count, f"{time.time():.0f}", f"{seconds:.3f}"]
                    + [f"{means[k]:.4f}" for k in sums]
                )
                log_handle.flush()
                log(
                    f"step {trainer.step_count}  {seconds:.3f} s/step  "
                    + "  ".join(f"{k} {v:.3f}" for k, v in means.items())
                )
                window_start, window_steps = time.time(), 0
                sums = dict.fromkeys(sums, 0.0)
            if time.time() - last_checkpoint >= config.checkpoint_minutes * 60:
                trainer.save(run_dir)
                trainer.sample_grid(run_dir / SAMPLES_FILE)
                log(f"checkpoint at step {trainer.step_count}")
                last_checkpoint = time.time()
    trainer.save(run_dir)
    trainer.sample_grid(run_dir / SAMPLES_FILE)
    return trainer


# --------------------------------------------------------------------------
# Publishing: the committed training state and the shipped model
#
# Two separate things leave a run folder. The *training state* is the run's
# fp16 resume file (G, EMA-G and D with the step and both configs in its
# metadata), its latest sample grid and loss log; it is committed once per
# session so the next session continues, and it may run ahead of the shipped
# model. *Shipping* writes the EMA generator and the discriminator with a
# model card into the app's model folder; that is done only when a checkpoint
# has been measured to be better than the one shipped.

PUBLISHED_G_FILE = "G_ema.safetensors"
PUBLISHED_D_FILE = "D.safetensors"
PUBLISHED_CARD = "model.json"
#: What the committed training folder holds: the whole resumable state, the latest grid, the log.
TRAINING_STATE_FILES = (RESUME_FILE, SAMPLES_FILE, LOG_FILE)


def _copy_atomically(source: Path, destination: Path) -> None:
    import shutil

    destination.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(destination, overwrite=True) as temporary:  # a failed copy leaves nothing behind
        shutil.copyfile(source, temporary)


def _write_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, overwrite=True) as temporary:
        save_file(tensors, str(temporary), metadata=metadata)


def publish_training_state(run_dir: Path, training_dir: Path) -> int:
    """Copy the run's resumable state, sample grid and log into ``training_dir``; returns the step."""
    from safetensors import safe_open

    with safe_open(str(run_dir / RESUME_FILE), framework="pt") as handle:
        step = int(handle.metadata()["step"])
    for name in TRAINING_STATE_FILES:
        if (run_dir / name).exists():
            _copy_atomically(run_dir / name, training_dir / name)
    return step


def seed_run_from_training_state(run_dir: Path, training_dir: Path) -> bool:
    """Recreate ``run_dir`` from a committed training folder; False if it holds no state."""
    if not (training_dir / RESUME_FILE).exists():
        return False
    for name in TRAINING_STATE_FILES:
        if (training_dir / name).exists() and not (run_dir / name).exists():
            _copy_atomically(training_dir / name, run_dir / name)
    return True


def ship_model(run_dir: Path, model_dir: Path, *, data_dir: Path | None = None) -> dict:
    """Write the shipped model (EMA-G, D, model card) from the run's latest state; returns the card."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    resume = run_dir / RESUME_FILE
    with safe_open(str(resume), framework="pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(resume))
    model_config = json.loads(metadata["model_config"])
    step = int(metadata["step"])
    model_metadata = {"config": json.dumps(model_config), "format": "dgp-studio-biggan", "step": str(step)}
    parts = {"G_ema.": PUBLISHED_G_FILE, "D.": PUBLISHED_D_FILE}
    for prefix, name in parts.items():
        selected = {k[len(prefix):]: v.to(torch.float16).contiguous() for k, v in tensors.items() if k.startswith(prefix)}
        _write_tensors(selected, model_dir / name, model_metadata)
    training_config = json.loads(metadata["training_config"])
    card = {
        "name": f"Built-in BigGAN-{model_config['resolution']} (Tiny ImageNet, {len(model_config['class_names'])} classes)",
        "format": "dgp-studio-biggan",
        "architecture": {
            "resolution": model_config["resolution"], "g_ch": model_config["g_ch"], "d_ch": model_config["d_ch"],
            "dim_z": model_config["dim_z"], "shared_dim": model_config["shared_dim"],
            "g_attention": model_config["g_attention"], "d_attention": model_config["d_attention"],
            "n_classes": model_config["n_classes"], "hierarchical_z": True, "shared_embedding": True,
            "spectral_norm": "G and D (BigGAN-PyTorch semantics)",
        },
        "classes": [
            {"label": i, "imagenet_index": index, "name": name}
            for i, (index, name) in enumerate(
                zip(model_config["class_imagenet_indices"], model_config["class_names"])
            )
        ],
        "training": {
            "generator_steps": step,
            "batch": training_config["batch"],
            "d_steps_per_g_step": training_config["d_steps_per_g_step"],
            "g_lr": training_config["g_lr"], "d_lr": training_config["d_lr"],
            "ema_decay": training_config["ema_decay"], "diffaugment": training_config["diffaugment"],
            "loss": "hinge", "optimizer": "Adam betas (0.0, 0.999)", "init": "orthogonal",
            "saved_at": metadata.get("saved_at", ""),
        },
        "data": {
            "name": "Tiny ImageNet-200 (CS231n), 180 training images per class",
            "licence": "ImageNet terms of access: non-commercial research and educational use only",
            "folder": str(data_dir) if data_dir else "",
        },
        "date": time.strftime("%Y-%m-%d"),
        "files": {
            "G": {"name": PUBLISHED_G_FILE, "sha256": sha256_file(model_dir / PUBLISHED_G_FILE),
                  "bytes": (model_dir / PUBLISHED_G_FILE).stat().st_size, "role": "EMA generator, fp16"},
            "D": {"name": PUBLISHED_D_FILE, "sha256": sha256_file(model_dir / PUBLISHED_D_FILE),
                  "bytes": (model_dir / PUBLISHED_D_FILE).stat().st_size, "role": "discriminator, fp16"},
        },
    }
    write_bytes_atomically(model_dir / PUBLISHED_CARD, (json.dumps(card, indent=2) + "\n").encode(), overwrite=True)
    return card


def _install_stop_handler():
    """SIGTERM/SIGINT end the loop after the current step; the state is then saved."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: False
    requested = []

    def handler(signum, frame):
        requested.append(signum)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return lambda: bool(requested)


def build_parser() -> argparse.ArgumentParser:
    defaults = TrainingConfig()
    parser = argparse.ArgumentParser(
        prog="dgp-studio train",
        description="Train the built-in class-conditional BigGAN on Tiny ImageNet tar shards.",
    )
    parser.add_argument("--data", type=Path, help="folder with classes.json and train-*.tar (required to train)")
    parser.add_argument("--out", required=True, type=Path, help="run folder (checkpoint, samples, log)")
    parser.add_argument("--resolution", type=int, default=defaults.resolution)
    parser.add_argument("--g-ch", type=int, default=defaults.g_ch, help="G channel multiplier")
    parser.add_argument("--d-ch", type=int, default=defaults.d_ch, help="D channel multiplier")
    parser.add_argument("--batch", type=int, default=defaults.batch)
    parser.add_argument("--steps", type=int, default=defaults.steps, help="G steps to reach")
    parser.add_argument("--d-steps", type=int, default=defaults.d_steps_per_g_step, help="D steps per G step")
    parser.add_argument("--g-lr", type=float, default=defaults.g_lr)
    parser.add_argument("--d-lr", type=float, default=defaults.d_lr)
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], default=defaults.precision)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--checkpoint-minutes", type=float, default=defaults.checkpoint_minutes)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--limit-images", type=int, default=None, help="use only the first N images (tests)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument("--seed-from", type=Path, metavar="TRAINING_DIR",
                        help="with --resume: if --out has no checkpoint, start from the training state "
                             "committed in this folder")
    parser.add_argument("--publish", type=Path, metavar="TRAINING_DIR",
                        help="do not train: copy the run's resumable state, sample grid and log from --out "
                             "into TRAINING_DIR")
    parser.add_argument("--model-dir", type=Path, metavar="DIR",
                        help="with --publish: also ship the run's EMA generator and discriminator with a "
                             "model card into DIR (the app's model folder)")
    return parser


def _check_output_folders(args) -> None:
    """Check --out, --publish and --model-dir before any work (one sentence each, exit 2)."""
    from engine.files import check_distinct_outputs, check_output

    inputs = [("the training data folder", args.data), ("the training state folder", args.seed_from)]
    if args.publish:
        inputs.append(("the run folder", args.out))
        for option, folder in (("--publish", args.publish), ("--model-dir", args.model_dir)):
            if folder is not None:
                check_output(folder, option=option, inputs=inputs, folder=True, may_exist=True)
        check_distinct_outputs([("--publish", args.publish), ("--model-dir", args.model_dir)])
    else:
        check_output(args.out, option="--out", inputs=inputs, folder=True, may_exist=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads is not None and not 1 <= args.threads <= 1024:
        print(f"dgp-studio train: --threads must be from 1 to 1024, got {args.threads}.", file=sys.stderr)
        return 2
    for option, value in (("--steps", args.steps), ("--batch", args.batch), ("--d-steps", args.d_steps),
                          ("--resolution", args.resolution), ("--g-ch", args.g_ch), ("--d-ch", args.d_ch)):
        if not 1 <= value <= 10**9:
            print(f"dgp-studio train: {option} must be from 1 to 10**9, got {value}.", file=sys.stderr)
            return 2
    try:
        _check_output_folders(args)
    except BadInputError as error:
        print(f"dgp-studio train: {error}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.publish:
        if not (args.out / RESUME_FILE).exists():
            print(f"dgp-studio train: {args.out} holds no {RESUME_FILE} to publish.", file=sys.stderr)
            return 2
        step = publish_training_state(args.out, args.publish)
        print(f"published the training state at step {step} to {args.publish}")
        if args.model_dir:
            ship_model(args.out, args.model_dir, data_dir=args.data)
            print(f"shipped the model at step {step} to {args.model_dir}")
        return 0
    if args.model_dir:
        print("dgp-studio train: --model-dir only goes with --publish.", file=sys.stderr)
        return 2
    config = None
    if args.resume and args.seed_from and not (args.out / RESUME_FILE).exists():
        args.out.mkdir(parents=True, exist_ok=True)
        if not seed_run_from_training_state(args.out, args.seed_from):
            print(f"dgp-studio train: {args.seed_from} holds no {RESUME_FILE} to continue from.", file=sys.stderr)
            return 2
        print(f"started {args.out} from the training state in {args.seed_from}", flush=True)
    if args.resume:
        config = read_run_config(args.out)
        if config is not None:
            # Architecture comes from the run; the step target may be raised.
            config = TrainingConfig(**{**asdict(config), "steps": args.steps})
    if config is None:
        config = TrainingConfig(
            resolution=args.resolution, g_ch=args.g_ch, d_ch=args.d_ch, batch=args.batch,
            steps=args.steps, d_steps_per_g_step=args.d_steps, g_lr=args.g_lr, d_lr=args.d_lr,
            precision=args.precision, checkpoint_minutes=args.checkpoint_minutes,
        )
    if args.data is None:
        print("dgp-studio train: --data DIR is required to train.", file=sys.stderr)
        return 2
    try:
        train(
            config, args.data, args.out, resume=args.resume, device=args.device,
            image_limit=args.limit_images, log=lambda m: print(m, flush=True),
        )
    except BadInputError as error:
        print(f"dgp-studio train: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
