"""BigGAN G/D against the reference fixtures, and the checkpoint loader's refusals.

The golden fixture (``shared/fixtures/biggan128_ch8_golden.pt``) holds outputs of
the reference implementation for a width-8 BigGAN-128; everything here must
agree within its stated 1e-4. The manifests pin the released checkpoints'
key sets and shapes, checked on the meta device so no 300 MB network is built.
"""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import pytest
import torch

from engine.biggan import BigGANConfig, Discriminator, Generator, orthogonal_init_
from engine.errors import BadInputError
from engine.models import infer_config, load_biggan

GOLDEN_TOLERANCE = 1e-4
DGP_NLL_WEIGHT = 0.02  # the fixture's total = ftr·1 + mse·1 + nll·0.02


def assert_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, atol=GOLDEN_TOLERANCE, rtol=0)


def feature_loss(fake: list[torch.Tensor], real: list[torch.Tensor], count: int) -> torch.Tensor:
    """DGP's feature loss: sum over the last ``count`` entries of mean |fake − real|."""
    return sum((f - r).abs().mean() for f, r in zip(fake[-count:], real[-count:]))


@pytest.fixture(scope="module")
def golden_pair(golden) -> tuple[Generator, Discriminator]:
    """(G, D) loaded once from the fixture's state dicts (eval mode); never modified."""
    return load_biggan(golden["G"], golden["D"])


@pytest.fixture
def golden_models(golden_pair) -> tuple[Generator, Discriminator]:
    """A private copy of the golden (G, D) that a test may modify."""
    return copy.deepcopy(golden_pair)


# --------------------------------------------------------------------------
# Golden outputs


def test_golden_config_is_inferred_from_the_state_dicts(golden, golden_pair):
    generator, discriminator = golden_pair
    config = generator.config
    assert config.resolution == golden["config"]["resolution"] == 128
    assert (config.g_ch, config.d_ch) == (golden["config"]["G_ch"], golden["config"]["D_ch"]) == (8, 8)
    assert config.effective_dim_z == golden["config"]["dim_z"] == 120
    assert config.g_attention == config.d_attention == (64,)
    assert discriminator.config == config


def test_generator_output_matches_reference(golden, golden_pair):
    generator, _ = golden_pair
    with torch.no_grad():
        images = generator(golden["z"], generator.shared(golden["y"]))
    assert images.shape == (2, 3, 128, 128)
    assert_close(images, golden["G_out"])


def test_generator_accepts_class_indices_as_well_as_embeddings(golden, golden_pair):
    generator, _ = golden_pair
    with torch.no_grad():
        images = generator(golden["z"], golden["y"])
    assert_close(images, golden["G_out"])


def test_discriminator_logits_and_features_match_reference(golden, golden_pair):
    _, discriminator = golden_pair
    with torch.no_grad():
        logits, features = discriminator(golden["G_out"], golden["y"])
        logits_without_class, features_without_class = discriminator(golden["G_out"])
    assert_close(logits, golden["D_logits"])
    assert_close(logits_without_class, golden["D_logits_no_y"])
    # The projection term must matter here, or the two checks above are one.
    assert (golden["D_logits"] - golden["D_logits_no_y"]).abs().max() > 10 * GOLDEN_TOLERANCE
    assert len(features) == len(golden["D_features"]) == discriminator.config.n_discriminator_features
    for index, (feature, expected) in enumerate(zip(features, golden["D_features"])):
        assert feature.shape == expected.shape, f"feature {index}"
        assert_close(feature, expected)
    for feature, expected in zip(features_without_class, golden["D_features"]):
        assert_close(feature, expected)


@pytest.mark.parametrize("count", [1, 3, 7, 8])
def test_feature_loss_matches_reference(golden, golden_pair, count):
    _, discriminator = golden_pair
    with torch.no_grad():
        fake_features = discriminator.features(golden["G_out"][0:1])
        real_features = discriminator.features(golden["G_out"][1:2])
    expected = golden["extras"]["ftr_loss_fake0_real1"][count]
    assert feature_loss(fake_features, real_features, count).item() == pytest.approx(
        expected, abs=GOLDEN_TOLERANCE
    )


def test_dgp_loss_terms_and_gradients_match_reference(golden, golden_models):
    generator, discriminator = golden_models
    discriminator.requires_grad_(False)
    reference_terms = golden["extras"]["dgp_loss_terms"]
    reference_grads = golden["extras"]["dgp_loss_grads"]

    latent = golden["z"][0:1].clone().requires_grad_(True)
    target = golden["G_out"][1:2]
    image = generator(latent, generator.shared(golden["y"][0:1]))
    with torch.no_grad():
        target_features = discriminator.features(target)
    terms = {
        "ftr": feature_loss(discriminator.features(image), target_features, 8),
        "mse": ((image - target) ** 2).mean(),
        "nll": (latent**2 / 2).mean(),
    }
    total = terms["ftr"] + terms["mse"] + DGP_NLL_WEIGHT * terms["nll"]
    for name, value in terms.items():
        assert value.item() == pytest.approx(reference_terms[name], abs=GOLDEN_TOLERANCE), name
    assert total.item() == pytest.approx(reference_terms["total"], abs=GOLDEN_TOLERANCE)

    total.backward()
    parameters = dict(generator.named_parameters())
    assert set(reference_grads) == {
        "z", "linear.weight", "blocks.4.0.conv2.weight", "blocks.4.0.bn2.gain.weight",
        "blocks.3.1.gamma", "shared.weight[1]",
    }
    assert_close(latent.grad, reference_grads["z"])
    # "shared.weight[1]" is the fixture's name for row 1 (the class used) of
    # the embedding's gradient.
    assert_close(parameters["shared.weight"].grad[1], reference_grads["shared.weight[1]"])
    for name in ("linear.weight", "blocks.4.0.conv2.weight", "blocks.4.0.bn2.gain.weight", "blocks.3.1.gamma"):
        assert parameters[name].grad is not None, name
        assert_close(parameters[name].grad, reference_grads[name])


def test_instance_norm_switch_matches_reference(golden, golden_models):
    generator = golden_models[0]
    embeddings = generator.shared(golden["y"]).detach()
    generator.reset_in_init()
    with torch.no_grad():
        first = generator(golden["z"][0:1], embeddings[0:1], use_in=True)
        second = generator(golden["z"][1:2], embeddings[1:2], use_in=True)
    assert_close(first, golden["extras"]["G_out_use_in_first"])
    assert_close(second, golden["extras"]["G_out_use_in_second"])
    # The first call re-initialises IN from BN statistics, so it only
    # approximately reproduces the BN output (fixture README: ~5e-3).
    assert (first - golden["G_out"][0:1]).abs().max() > 10 * GOLDEN_TOLERANCE


def _spectral_norm_buffers(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {
        name: buffer.clone()
        for name, buffer in module.named_buffers()
        if name.endswith((".u0", ".sv0"))
    }


def test_eval_mode_never_writes_spectral_norm_buffers(golden, golden_models):
    generator, discriminator = golden_models
    generator_before = _spectral_norm_buffers(generator)
    discriminator_before = _spectral_norm_buffers(discriminator)
    assert generator_before and discriminator_before

    image = generator(golden["z"], generator.shared(golden["y"]))
    logits, features = discriminator(image, golden["y"])
    (logits.sum() + features[-1].sum()).backward()
    with torch.no_grad():
        generator(golden["z"], generator.shared(golden["y"]))

    for module, before in ((generator, generator_before), (discriminator, discriminator_before)):
        after = _spectral_norm_buffers(module)
        changed = [name for name in before if not torch.equal(before[name], after[name])]
        assert changed == []

    # Contrast: a train-mode forward does write u0 and sv0, so the check above
    # is not vacuous.
    trained = copy.deepcopy(generator).train()
    with torch.no_grad():
        trained(golden["z"], trained.shared(golden["y"]))
    after_train = _spectral_norm_buffers(trained)
    assert any(not torch.equal(generator_before[name], after_train[name]) for name in generator_before)


# --------------------------------------------------------------------------
# Released-checkpoint manifests (meta device: shapes only)

RELEASED_CHECKPOINTS = ["128", "256", "ch64_256"]


def _meta_state_dict(entries: dict[str, list]) -> dict[str, torch.Tensor]:
    return {
        key: torch.empty(shape, dtype=getattr(torch, dtype), device="meta")
        for key, (shape, dtype) in entries.items()
    }


def _shapes(module: torch.nn.Module) -> dict[str, tuple[list[int], str]]:
    """State-dict entries in the manifests' form: key -> ([shape], dtype name)."""
    return {
        key: (list(value.shape), str(value.dtype).removeprefix("torch."))
        for key, value in module.state_dict().items()
    }


def _as_manifest(entries: dict[str, list]) -> dict[str, tuple[list[int], str]]:
    return {key: (shape, dtype) for key, (shape, dtype) in entries.items()}


@pytest.mark.parametrize("suffix", RELEASED_CHECKPOINTS)
def test_infer_config_recognises_released_checkpoint(checkpoint_manifests, suffix):
    manifest = checkpoint_manifests[suffix]
    reference, derived = manifest["config"], manifest["derived"]
    config = infer_config(_meta_state_dict(manifest["G"]), _meta_state_dict(manifest["D"]))
    assert config.resolution == reference["resolution"]
    assert (config.g_ch, config.d_ch) == (reference["G_ch"], reference["D_ch"])
    assert config.n_classes == reference["n_classes"]
    assert config.shared_dim == reference["shared_dim"]
    assert config.bottom_width == reference["bottom_width"]
    assert config.effective_dim_z == derived["effective_dim_z"] == (120 if suffix == "128" else 119)
    assert config.z_chunk_size == derived["z_chunk_size"]
    assert config.g_attention == (int(reference["G_attn"]),)
    assert config.d_attention == (int(reference["D_attn"]),)
    assert config.n_generator_blocks == derived["G_blocks"]
    assert config.n_discriminator_features == derived["D_feature_count"]


@pytest.mark.parametrize("suffix", RELEASED_CHECKPOINTS)
def test_models_have_exactly_the_released_keys_and_shapes(checkpoint_manifests, suffix):
    manifest = checkpoint_manifests[suffix]
    config = infer_config(_meta_state_dict(manifest["G"]), _meta_state_dict(manifest["D"]))
    with torch.device("meta"):
        generator = Generator(config)
        discriminator = Discriminator(config)
    # The DGP generator also owns the InstanceNorm affine parameters, which
    # BigGAN-PyTorch files lack (the loader treats them as optional).
    expected_generator = _as_manifest(manifest["G"]) | _as_manifest(manifest["G_model_only_keys"])
    expected_discriminator = _as_manifest(manifest["D"])
    generator_shapes, discriminator_shapes = _shapes(generator), _shapes(discriminator)
    # Key sets first, so a failure lists the odd keys rather than a long diff.
    assert sorted(set(generator_shapes) ^ set(expected_generator)) == []
    assert sorted(set(discriminator_shapes) ^ set(expected_discriminator)) == []
    assert generator_shapes == expected_generator
    assert discriminator_shapes == expected_discriminator


# --------------------------------------------------------------------------
# Loader: what it accepts and what it refuses


def _tiny_pair(
    *, resolution: int = 32, g_ch: int = 4, d_ch: int = 4, n_classes: int = 10, seed: int = 0,
    attention: tuple[int, ...] = (16,),
) -> tuple[Generator, Discriminator]:
    config = BigGANConfig(
        resolution=resolution, g_ch=g_ch, d_ch=d_ch, n_classes=n_classes,
        g_attention=attention, d_attention=attention,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator, discriminator = Generator(config), Discriminator(config)
        orthogonal_init_(generator)
        orthogonal_init_(discriminator)
    return generator.eval(), discriminator.eval()


@pytest.fixture
def tiny_checkpoint_files(tmp_path: Path, tiny_biggan) -> tuple[Path, Path]:
    generator, discriminator = tiny_biggan
    generator_path, discriminator_path = tmp_path / "G_tiny.pth", tmp_path / "D_tiny.pth"
    torch.save(generator.state_dict(), generator_path)
    torch.save(discriminator.state_dict(), discriminator_path)
    return generator_path, discriminator_path


def _refusal(excinfo: pytest.ExceptionInfo, path: Path) -> str:
    message = str(excinfo.value)
    assert str(path) in message, f"the message does not name {path}: {message!r}"
    # One sentence for a dialog or a terminal: no line breaks, no escape codes.
    assert message.isprintable(), f"the message has control characters: {message!r}"
    return message


def test_loader_round_trips_a_saved_pair(tiny_checkpoint_files, tiny_biggan):
    generator, discriminator = tiny_biggan
    loaded_generator, loaded_discriminator = load_biggan(*tiny_checkpoint_files)
    assert not loaded_generator.training and not loaded_discriminator.training
    latent = torch.randn(2, generator.dim_z, generator=torch.Generator().manual_seed(3))
    classes = torch.tensor([0, 7])
    with torch.no_grad():
        expected = generator(latent, classes)
        assert torch.equal(loaded_generator(latent, classes), expected)
        assert torch.equal(loaded_discriminator(expected, classes)[0], discriminator(expected, classes)[0])


def test_loader_refuses_a_generator_given_as_discriminator(tiny_checkpoint_files):
    generator_path, _ = tiny_checkpoint_files
    with pytest.raises(BadInputError) as excinfo:
        load_biggan(generator_path, generator_path)
    assert "generator, not a discriminator" in _refusal(excinfo, generator_path)


def test_loader_refuses_swapped_files(tiny_checkpoint_files):
    generator_path, discriminator_path = tiny_checkpoint_files
    with pytest.raises(BadInputError) as excinfo:
        load_biggan(discriminator_path, generator_path)
    assert "generator" in _refusal(excinfo, discriminator_path)


def test_loader_refuses_a_truncated_file(tmp_path, tiny_checkpoint_files):
    generator_path, discriminator_path = tiny_checkpoint_files
    data = generator_path.read_bytes()
    truncated = tmp_path / "G_truncated.pth"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadInputError) as excinfo:
        load_biggan(truncated, discriminator_path)
    assert "truncated" in _refusal(excinfo, truncated)


def test_loader_refuses_an_empty_file(tmp_path, tiny_checkpoint_files):
    generator_path, _ = tiny_checkpoint_files
    empty = tmp_path / "D_empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(BadInputError) as excinfo:
        load_biggan(generator_path, empty)
    assert "empty" in _refusal(excinfo, empty)


def test_loader_refuses_a_discriminator_of_another_resolution(tmp_path, tiny_checkpoint_files):
    generator_path, _ = tiny_checkpoint_files
    # A 64 px D (5 blocks) beside a 32 px G (4 blocks).
    _, other_discriminator = _tiny_pair(resolution=64, attention=())
    other_path = tmp_path / "D_64px.pth"
    torch.save(other_discriminator.state_dict(), other_path)
    with pytest.raises(BadInputError) as excinfo:
        load_biggan(generator_path, other_path)
    assert "not a pair" in _refusal(excinfo, other_path)


def test_loader_refuses_a_discriminator_with_other_classes(tmp_path, tiny_checkpoint_files):
    generator_path, _ = tiny_checkpoint_files
    _, other_discriminator = _tiny_pair(n_classes=20)
    other_path = tmp_path / "D_20_classes.pth"
    torch.save(other_discriminator.state_dict(), other_path)
    with pytest.raises(BadInputError) as excinfo:
        load_biggan(generator_path, other_path)
    assert "not a pair" in _refusal(excinfo, other_path)


def test_loader_refuses_an_entry_of_the_wrong_shape(tmp_path, tiny_biggan, tiny_checkpoint_files):
    generator, _ = tiny_biggan
    _, discriminator_path = tiny_checkpoint_files
    state = generator.state_dict()
    key = "blocks.1.0.conv1.weight"
    out_channels, in_channels, height, width = state[key].shape
    state[key] = torch.zeros(out_channels, in_channels * 2, height, width)
    mismatched = tmp_path / "G_mismatched.pth"
    torch.save(state, mismatched)
    with pytest.raises(BadInputError) as excinfo:
        load_biggan(mismatched, discriminator_path)
    assert key in _refusal(excinfo, mismatched)


def test_loader_infers_generator_and_discriminator_widths_separately(tmp_path):
    # BigGAN allows G_ch != D_ch; such a pair is not "another architecture".
    generator, _ = _tiny_pair(g_ch=8)
    _, discriminator = _tiny_pair(d_ch=16)
    torch.save(generator.state_dict(), tmp_path / "G.pth")
    torch.save(discriminator.state_dict(), tmp_path / "D.pth")
    loaded_generator, loaded_discriminator = load_biggan(tmp_path / "G.pth", tmp_path / "D.pth")
    assert (loaded_generator.config.g_ch, loaded_discriminator.config.d_ch) == (8, 16)


def test_loader_needs_a_discriminator_unless_allowed(tiny_checkpoint_files):
    generator_path, _ = tiny_checkpoint_files
    with pytest.raises(BadInputError) as excinfo:
        load_biggan(generator_path, None)
    assert "discriminator" in _refusal(excinfo, generator_path)
    loaded_generator, loaded_discriminator = load_biggan(
        generator_path, None, allow_missing_discriminator=True
    )
    assert loaded_discriminator is None
    assert loaded_generator.config.resolution == 32


class _CreatesFileWhenUnpickled:
    """Pickles as a call to ``open(path, "w")``: unpickling it creates ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


@pytest.mark.parametrize("container", ["plain pickle", "torch.save zip"])
def test_loader_refuses_a_malicious_pickle_without_running_it(tmp_path, tiny_checkpoint_files, container):
    _, discriminator_path = tiny_checkpoint_files
    # Prove the payload is live: a plain unpickle really creates its file.
    canary = tmp_path / "canary_created_by_pickle"
    pickle.loads(pickle.dumps(_CreatesFileWhenUnpickled(canary))).close()
    assert canary.exists()

    victim = tmp_path / "created_by_checkpoint"
    payload = {"linear.weight": _CreatesFileWhenUnpickled(victim)}
    malicious = tmp_path / "G_malicious.pth"
    if container == "plain pickle":
        malicious.write_bytes(pickle.dumps(payload, protocol=2))
    else:
        torch.save(payload, malicious)
    with pytest.raises(BadInputError) as excinfo:
        load_biggan(malicious, discriminator_path)
    assert not victim.exists()
    _refusal(excinfo, malicious)
