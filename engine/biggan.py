"""BigGAN generator and discriminator with BigGAN-PyTorch semantics.

The layers reproduce the reference implementation that the released DGP
checkpoints were trained with (ajbrock/BigGAN-PyTorch as used by
XingangPan/deep-generative-prior), so that released state dicts load with
their original key names and give the same outputs:

* spectral norm keeps one stored left singular vector ``u0`` (1 x out) and a
  logging buffer ``sv0``; *every* forward runs one power step from the stored
  ``u0`` without gradient and divides by ``sigma = v W^T u'^T`` with gradient
  through ``W`` only (``docs/dgp-method.md`` section 2.3). In eval mode
  ``u0`` is never written, so outputs are a pure function of the state dict.
* class-conditional batch norm multiplies by ``1 + gain(c)``; statistics live
  in ``stored_mean``/``stored_var`` and are used in eval mode.
* the generator consumes a class *embedding*, not an index, so class vectors
  can be interpolated.
* ``D.features`` returns the DGP feature list: each block-list module's output,
  the last one after ReLU, and the pooled vector.

Beyond the reference, :meth:`SpectralNormMixin.freeze_normalized_weight`
caches ``W / sigma`` (optionally pre-cast for autocast) for networks whose
weights no longer change, such as the frozen discriminator during DGP.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

SN_EPS = 1e-6
BN_EPS = 1e-5

# Channel multipliers per block, from BigGAN-PyTorch's G_arch / D_arch.
_G_ARCH = {
    32: ([4, 4, 4], [4, 4, 4]),
    64: ([16, 16, 8, 4], [16, 8, 4, 2]),
    128: ([16, 16, 8, 4, 2], [16, 8, 4, 2, 1]),
    256: ([16, 16, 8, 8, 4, 2], [16, 8, 8, 4, 2, 1]),
    512: ([16, 16, 8, 8, 4, 2, 1], [16, 8, 8, 4, 2, 1, 1]),
}
# D: (input multipliers after RGB, output multipliers, downsample flags,
# resolution labels). The labels are the reference's, which place attention;
# at 32 px they are all 16 as in BigGAN-PyTorch.
_D_ARCH = {
    32: ([4, 4, 4], [4, 4, 4, 4], [True, True, False, False], [16, 16, 16, 16]),
    64: ([1, 2, 4, 8], [1, 2, 4, 8, 16], [True] * 4 + [False], [32, 16, 8, 4, 4]),
    128: ([1, 2, 4, 8, 16], [1, 2, 4, 8, 16, 16], [True] * 5 + [False], [64, 32, 16, 8, 4, 4]),
    256: (
        [1, 2, 4, 8, 8, 16], [1, 2, 4, 8, 8, 16, 16], [True] * 6 + [False],
        [128, 64, 32, 16, 8, 4, 4],
    ),
    512: (
        [1, 1, 2, 4, 8, 8, 16], [1, 1, 2, 4, 8, 8, 16, 16], [True] * 7 + [False],
        [256, 128, 64, 32, 16, 8, 4, 4],
    ),
}
SUPPORTED_RESOLUTIONS = tuple(sorted(_G_ARCH))


def generator_block_resolutions(resolution: int) -> list[int]:
    """Output resolution of each generator block (all blocks upsample by 2)."""
    count = len(_G_ARCH[resolution][0])
    return [2 ** (i + 3) for i in range(count)]


def discriminator_block_resolutions(resolution: int) -> list[int]:
    """Resolution label of each discriminator block (where attention may follow)."""
    return list(_D_ARCH[resolution][3])


@dataclass(frozen=True)
class BigGANConfig:
    """Architecture of a BigGAN pair; everything a state dict's shapes determine."""

    resolution: int = 128
    g_ch: int = 96
    d_ch: int = 96
    n_classes: int = 1000
    dim_z: int = 120  # requested; the hierarchical split may round it down
    shared_dim: int = 128
    g_attention: tuple[int, ...] = (64,)
    d_attention: tuple[int, ...] = (64,)
    bottom_width: int = 4
    class_names: tuple[str, ...] = field(default=(), compare=False)
    class_imagenet_indices: tuple[int, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if self.resolution not in _G_ARCH:
            raise ValueError(
                f"BigGAN resolution {self.resolution} is not supported; "
                f"choose one of {SUPPORTED_RESOLUTIONS}."
            )

    @property
    def num_slots(self) -> int:
        return len(_G_ARCH[self.resolution][0]) + 1

    @property
    def z_chunk_size(self) -> int:
        return self.dim_z // self.num_slots

    @property
    def effective_dim_z(self) -> int:
        """Latent size G really consumes (119 at 256 px, 120 at 128 px)."""
        return self.z_chunk_size * self.num_slots

    @property
    def n_generator_blocks(self) -> int:
        return len(_G_ARCH[self.resolution][0])

    @property
    def n_discriminator_features(self) -> int:
        blocks = len(_D_ARCH[self.resolution][1])
        attention = sum(
            1 for r in discriminator_block_resolutions(self.resolution) if r in self.d_attention
        )
        return blocks + attention + 1

    def to_json_dict(self) -> dict:
        data = asdict(self)
        data["g_attention"] = list(self.g_attention)
        data["d_attention"] = list(self.d_attention)
        data["class_names"] = list(self.class_names)
        data["class_imagenet_indices"] = list(self.class_imagenet_indices)
        return data

    @classmethod
    def from_json_dict(cls, data: dict) -> BigGANConfig:
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("g_attention", "d_attention", "class_names", "class_imagenet_indices"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)


# --------------------------------------------------------------------------
# Spectral normalisation with the reference's semantics


def _weight_matrix(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` as an (out, -1) matrix, as a view whenever the layout allows.

    A channels_last conv weight is viewed with its columns in memory order
    (kh, kw, in) instead of (in, kh, kw): sigma, u and the gradient are the
    same for any column order, and no 4-byte-per-weight copy is made on every
    forward and backward.
    """
    if weight.dim() == 4 and not weight.is_contiguous() and weight.is_contiguous(memory_format=torch.channels_last):
        return weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1)
    return weight.reshape(weight.shape[0], -1)


class SpectralNormMixin:
    """Shared by SN conv, linear and embedding layers.

    Buffers ``u0`` (1 x out) and ``sv0`` (1,) keep the reference names so that
    BigGAN-PyTorch state dicts load unchanged.
    """

    weight: torch.Tensor
    training: bool

    def _init_spectral_norm(self, out_features: int, *, eps: float = SN_EPS) -> None:
        self.sn_eps = eps
        self.register_buffer("u0", torch.randn(1, out_features))
        self.register_buffer("sv0", torch.ones(1))
        self._frozen_weight: torch.Tensor | None = None

    def spectral_sigma(self) -> torch.Tensor:
        """Largest-singular-value estimate: one power step from the stored u."""
        weight_matrix = _weight_matrix(self.weight)
        with torch.no_grad():
            w = weight_matrix.detach().float()
            v = F.normalize(self.u0 @ w, dim=1, eps=self.sn_eps)
            u = F.normalize(v @ w.t(), dim=1, eps=self.sn_eps)
            if self.training:
                self.u0.copy_(u)
        # sigma = v W^T u'^T with gradient through W only (u', v constants).
        sigma = (v.to(weight_matrix.dtype) @ weight_matrix.t() @ u.t().to(weight_matrix.dtype)).reshape(())
        if self.training:
            with torch.no_grad():
                self.sv0.copy_(sigma.detach().reshape(1))
        return sigma

    def normalized_weight(self) -> torch.Tensor:
        """``W / sigma`` (or the cached constant when frozen)."""
        if self._frozen_weight is not None:
            return self._frozen_weight
        return self.weight / self.spectral_sigma()

    def freeze_normalized_weight(self, dtype: torch.dtype | None = None) -> None:
        """Cache ``W / sigma`` as a constant, optionally cast (e.g. to bf16).

        Only valid while the weight and ``u0`` stay unchanged (eval mode,
        no optimiser on this layer), as for DGP's discriminator.
        """
        with torch.no_grad():
            was_training = self.training
            self.training = False
            weight = self.weight / self.spectral_sigma()
            self.training = was_training
            if dtype is not None:
                weight = weight.to(dtype)
            if weight.dim() == 4:
                weight = weight.contiguous(memory_format=torch.channels_last)
        self._frozen_weight = weight.detach()

    def unfreeze_normalized_weight(self) -> None:
        self._frozen_weight = None


def _scale_output_instead(weight: torch.Tensor, x: torch.Tensor, out_channels: int) -> bool:
    """Whether W has more elements than the layer's output (batch x out x positions)."""
    positions = x.shape[2] * x.shape[3] if x.dim() == 4 else 1
    return weight.numel() > x.shape[0] * out_channels * positions


class SNConv2d(nn.Conv2d, SpectralNormMixin):
    def __init__(self, *args, sn_eps: float = SN_EPS, **kwargs) -> None:
        nn.Conv2d.__init__(self, *args, **kwargs)
        self._init_spectral_norm(self.out_channels, eps=sn_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._frozen_weight is None and _scale_output_instead(self.weight, x, self.out_channels):
            # conv(x, W / sigma) == conv(x, W) / sigma: for weights larger than
            # the activation, dividing the output is far cheaper (forward and
            # backward) than normalising every weight.
            out = F.conv2d(x, self.weight, None, self.stride, self.padding, self.dilation, self.groups)
            out = out / self.spectral_sigma().to(out.dtype)
            return out if self.bias is None else out + self.bias.to(out.dtype).view(1, -1, 1, 1)
        weight = self.normalized_weight()
        bias = self.bias
        if weight.dtype != x.dtype and not torch.is_autocast_enabled(x.device.type):
            weight = weight.to(x.dtype)
        if bias is not None and self._frozen_weight is not None and bias.dtype != weight.dtype:
            bias = bias.to(weight.dtype)
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)


class SNLinear(nn.Linear, SpectralNormMixin):
    def __init__(self, *args, sn_eps: float = SN_EPS, **kwargs) -> None:
        nn.Linear.__init__(self, *args, **kwargs)
        self._init_spectral_norm(self.out_features, eps=sn_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._frozen_weight is None and _scale_output_instead(self.weight, x, self.out_features):
            out = F.linear(x, self.weight) / self.spectral_sigma()
            return out if self.bias is None else out + self.bias
        weight = self.normalized_weight()
        bias = self.bias
        if bias is not None and self._frozen_weight is not None and bias.dtype != weight.dtype:
            bias = bias.to(weight.dtype)
        return F.linear(x, weight, bias)


class SNEmbedding(nn.Embedding, SpectralNormMixin):
    def __init__(self, *args, sn_eps: float = SN_EPS, **kwargs) -> None:
        nn.Embedding.__init__(self, *args, **kwargs)
        self._init_spectral_norm(self.num_embeddings, eps=sn_eps)

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        return F.embedding(index, self.normalized_weight())


def spectral_norm_layers(module: nn.Module) -> list[SpectralNormMixin]:
    return [m for m in module.modules() if isinstance(m, SpectralNormMixin)]


# --------------------------------------------------------------------------
# Normalisation


class StoredStatsBatchNorm(nn.Module):
    """Affine batch norm with BigGAN-PyTorch buffer names (output layer)."""

    def __init__(self, channels: int, *, eps: float = BN_EPS, momentum: float = 0.1) -> None:
        super().__init__()
        self.eps = eps
        self.momentum = momentum
        self.gain = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("stored_mean", torch.zeros(channels))
        self.register_buffer("stored_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(
            x, self.stored_mean, self.stored_var, self.gain, self.bias,
            self.training, self.momentum, self.eps,
        )


class ClassConditionalBatchNorm(nn.Module):
    """BN with stored statistics, then ``* (1 + gain(c)) + bias(c)``."""

    def __init__(
        self, channels: int, condition_size: int, *, eps: float = BN_EPS, momentum: float = 0.1
    ) -> None:
        super().__init__()
        self.eps = eps
        self.momentum = momentum
        self.gain = SNLinear(condition_size, channels, bias=False)
        self.bias = SNLinear(condition_size, channels, bias=False)
        self.register_buffer("stored_mean", torch.zeros(channels))
        self.register_buffer("stored_var", torch.ones(channels))

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        gain = (1 + self.gain(condition)).view(condition.shape[0], -1, 1, 1)
        bias = self.bias(condition).view(condition.shape[0], -1, 1, 1)
        out = F.batch_norm(
            x, self.stored_mean, self.stored_var, None, None,
            self.training, self.momentum, self.eps,
        )
        return out * gain + bias


# --------------------------------------------------------------------------
# Blocks


def upsample_nearest_2x(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour 2x upsampling (the reference's ``F.interpolate(scale_factor=2)``).

    torch's kernel keeps channels_last and its backward is a strided 2x2 sum:
    on a CPU it is 4x (fp32) to 30x (bf16) faster than an expand/reshape
    formulation, whose backward reduces over a 6-d view.
    """
    return F.interpolate(x, scale_factor=2, mode="nearest")


class GeneratorBlock(nn.Module):
    """Upsampling residual block with class-conditional BN (and DGP's IN switch)."""

    def __init__(self, in_channels: int, out_channels: int, condition_size: int) -> None:
        super().__init__()
        self.conv1 = SNConv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.conv2 = SNConv2d(out_channels, out_channels, kernel_size=3, padding=1)
        self.conv_sc = SNConv2d(in_channels, out_channels, kernel_size=1, padding=0)
        self.bn1 = ClassConditionalBatchNorm(in_channels, condition_size)
        self.bn2 = ClassConditionalBatchNorm(out_channels, condition_size)
        # DGP's instance-norm switch; parameters are absent from released files.
        self.in1 = nn.InstanceNorm2d(in_channels, affine=True)
        self.in2 = nn.InstanceNorm2d(out_channels, affine=True)
        for norm in (self.in1, self.in2):
            norm.weight.requires_grad_(False)
            norm.bias.requires_grad_(False)

    def _normalize(
        self, index: int, x: torch.Tensor, condition: torch.Tensor, use_in: bool, init_in: bool
    ) -> torch.Tensor:
        bn = self.bn1 if index == 1 else self.bn2
        if not use_in:
            return bn(x, condition)
        instance_norm = self.in1 if index == 1 else self.in2
        if init_in:
            # DGP initialises IN's affine from what the BN would output for
            # this very input (unbiased per-channel std and mean, batch 1).
            with torch.no_grad():
                reference = bn(x, condition)
                instance_norm.weight.copy_(reference.float().std(dim=(2, 3))[0])
                instance_norm.bias.copy_(reference.float().mean(dim=(2, 3))[0])
        return instance_norm(x)

    def forward(
        self, x: torch.Tensor, condition: torch.Tensor, *, use_in: bool = False,
        init_in: bool = False,
    ) -> torch.Tensor:
        h = F.relu(self._normalize(1, x, condition, use_in, init_in))
        h = self.conv1(upsample_nearest_2x(h))
        h = F.relu(self._normalize(2, h, condition, use_in, init_in))
        h = self.conv2(h)
        # A 1x1 conv commutes with nearest upsampling, so the shortcut runs at
        # the input resolution (4x fewer positions) and upsamples its output.
        return h + upsample_nearest_2x(self.conv_sc(x))


class SelfAttention(nn.Module):
    """SAGAN attention with BigGAN-PyTorch's key names (theta, phi, g, o, gamma)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.theta = SNConv2d(channels, channels // 8, kernel_size=1, bias=False)
        self.phi = SNConv2d(channels, channels // 8, kernel_size=1, bias=False)
        self.g = SNConv2d(channels, channels // 2, kernel_size=1, bias=False)
        self.o = SNConv2d(channels // 2, channels, kernel_size=1, bias=False)
        self.gamma = nn.Parameter(torch.tensor(0.0))

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None, **_: object) -> torch.Tensor:
        batch, _channels, height, width = x.shape
        positions = height * width
        theta = self.theta(x).reshape(batch, self.channels // 8, positions)
        phi = F.max_pool2d(self.phi(x), 2).reshape(batch, self.channels // 8, positions // 4)
        g = F.max_pool2d(self.g(x), 2).reshape(batch, self.channels // 2, positions // 4)
        beta = F.softmax(torch.bmm(theta.transpose(1, 2), phi), dim=-1)
        attended = torch.bmm(g, beta.transpose(1, 2)).reshape(batch, self.channels // 2, height, width)
        return self.gamma * self.o(attended) + x


class DiscriminatorBlock(nn.Module):
    """Residual D block ("wide"): optional pre-activation, avg-pool downsampling."""

    def __init__(
        self, in_channels: int, out_channels: int, *, preactivation: bool, downsample: bool
    ) -> None:
        super().__init__()
        self.preactivation = preactivation
        self.downsample = downsample
        self.conv1 = SNConv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.conv2 = SNConv2d(out_channels, out_channels, kernel_size=3, padding=1)
        self.learnable_shortcut = in_channels != out_channels or downsample
        if self.learnable_shortcut:
            self.conv_sc = SNConv2d(in_channels, out_channels, kernel_size=1, padding=0)

    def _shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.preactivation:
            if self.learnable_shortcut:
                x = self.conv_sc(x)
            if self.downsample:
                x = F.avg_pool2d(x, 2)
        else:
            if self.downsample:
                x = F.avg_pool2d(x, 2)
            if self.learnable_shortcut:
                x = self.conv_sc(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(x) if self.preactivation else x
        h = self.conv2(F.relu(self.conv1(h)))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        return h + self._shortcut(x)


# --------------------------------------------------------------------------
# Networks


class Generator(nn.Module):
    """BigGAN generator: ``G(z, class_embedding) -> images in [-1, 1]``.

    ``forward`` also accepts an integer class-index tensor in place of the
    embedding, for convenience.
    """

    def __init__(self, config: BigGANConfig) -> None:
        super().__init__()
        self.config = config
        ch = config.g_ch
        in_mult, out_mult = _G_ARCH[config.resolution]
        self.z_chunk_size = config.z_chunk_size
        self.dim_z = config.effective_dim_z
        condition_size = config.shared_dim + self.z_chunk_size
        self.shared = nn.Embedding(config.n_classes, config.shared_dim)
        self.linear = SNLinear(
            self.z_chunk_size, in_mult[0] * ch * config.bottom_width**2
        )
        self.blocks = nn.ModuleList()
        for index, resolution in enumerate(generator_block_resolutions(config.resolution)):
            block_list = nn.ModuleList(
                [GeneratorBlock(in_mult[index] * ch, out_mult[index] * ch, condition_size)]
            )
            if resolution in config.g_attention:
                block_list.append(SelfAttention(out_mult[index] * ch))
            self.blocks.append(block_list)
        self.output_layer = nn.Sequential(
            StoredStatsBatchNorm(out_mult[-1] * ch),
            nn.ReLU(),
            SNConv2d(out_mult[-1] * ch, 3, kernel_size=3, padding=1),
        )
        self._in_initialised = False

    @property
    def in_initialised(self) -> bool:
        """Whether the next ``use_in`` forward uses the IN parameters as they are."""
        return self._in_initialised

    def reset_in_init(self) -> None:
        """Make the next ``use_in`` forward re-initialise the IN parameters."""
        self._in_initialised = False

    def mark_in_initialised(self) -> None:
        """Keep the IN parameters: the next ``use_in`` forward uses them unchanged.

        For parameters a DGP run set or a state brought; a ``use_in=False``
        forward or :meth:`reset_in_init` makes the next ``use_in`` forward
        initialise them again (section 6.5).
        """
        self._in_initialised = True

    def embed(self, class_index: torch.Tensor) -> torch.Tensor:
        return self.shared(class_index)

    def forward(
        self, z: torch.Tensor, class_vector: torch.Tensor, *, use_in: bool = False
    ) -> torch.Tensor:
        if not torch.is_floating_point(class_vector):
            class_vector = self.shared(class_vector)
        if z.shape[1] != self.dim_z:
            raise ValueError(f"latent has {z.shape[1]} entries; this generator needs {self.dim_z}.")
        init_in = False
        if use_in:
            init_in = not self._in_initialised
            if init_in and z.shape[0] != 1:
                # The IN affine parameters are shared by the batch; DGP sets them
                # from one image's statistics, which a batch does not have.
                raise ValueError(
                    f"instance-norm initialisation needs a batch of one image, got {z.shape[0]}; "
                    f"initialise with one image first (or call mark_in_initialised)."
                )
            self._in_initialised = True
        else:
            self._in_initialised = False
        chunks = torch.split(z, self.z_chunk_size, dim=1)
        conditions = [torch.cat([class_vector, chunk], dim=1) for chunk in chunks[1:]]
        h = self.linear(chunks[0])
        h = h.view(h.shape[0], -1, self.config.bottom_width, self.config.bottom_width)
        for index, block_list in enumerate(self.blocks):
            for block in block_list:
                h = block(h, conditions[index], use_in=use_in, init_in=init_in)
        return torch.tanh(self.output_layer(h))


class Discriminator(nn.Module):
    """BigGAN projection discriminator with DGP's feature list."""

    def __init__(self, config: BigGANConfig) -> None:
        super().__init__()
        self.config = config
        ch = config.d_ch
        in_mult, out_mult, downsample, resolutions = _D_ARCH[config.resolution]
        in_channels = [3] + [m * ch for m in in_mult]
        out_channels = [m * ch for m in out_mult]
        n_blocks = len(out_channels)
        self.blocks = nn.ModuleList()
        for index in range(n_blocks):
            block_list = nn.ModuleList(
                [
                    DiscriminatorBlock(
                        in_channels[index], out_channels[index],
                        preactivation=index > 0, downsample=downsample[index],
                    )
                ]
            )
            if resolutions[index] in config.d_attention:
                block_list.append(SelfAttention(out_channels[index]))
            self.blocks.append(block_list)
        self.linear = SNLinear(out_channels[-1], 1)
        self.embed = SNEmbedding(config.n_classes, out_channels[-1])

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """DGP feature list: each block-list module's output, then the pooled vector."""
        return self._run(x, None)[1]

    def _run(
        self, x: torch.Tensor, class_index: torch.Tensor | None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        features: list[torch.Tensor] = []
        h = x
        for block_list in self.blocks:
            for block in block_list:
                h = block(h)
                features.append(h)
        # The reference applies an in-place ReLU to the last block's output,
        # so that list entry is post-ReLU; earlier entries are raw sums.
        h = F.relu(h)
        features[-1] = h
        pooled = h.sum(dim=(2, 3))
        features.append(pooled)
        logits = self.linear(pooled)
        if class_index is not None:
            logits = logits + (self.embed(class_index).to(pooled.dtype) * pooled).sum(1, keepdim=True)
        return logits, features

    def forward(
        self, x: torch.Tensor, class_index: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Return ``(logits, features)``; the projection term needs ``class_index``."""
        return self._run(x, class_index)

    def freeze(self, dtype: torch.dtype | None = None) -> None:
        """Eval mode, no gradients, and constant normalised weights (DGP's D)."""
        self.eval()
        self.requires_grad_(False)
        for layer in spectral_norm_layers(self):
            layer.freeze_normalized_weight(dtype)


# --------------------------------------------------------------------------
# Initialisation (training from scratch)


def orthogonal_init_(module: nn.Module) -> None:
    """BigGAN's "ortho" init for conv/linear/embedding weights."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear, nn.Embedding)):
            nn.init.orthogonal_(layer.weight)
            if getattr(layer, "bias", None) is not None and not isinstance(layer, nn.Embedding):
                nn.init.zeros_(layer.bias)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())

