"""Manipulating results without optimisation: jitter states, class transfer, edits kept as results, morphs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.api import Engine, MorphRenderer, RestoreRequest, load_model
from engine.errors import BadInputError
from tests.conftest import make_tiny_biggan


def photo(width: int = 60, height: int = 44, *, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width]
    image = np.stack([xs * 255 / width, ys * 255 / height, (xs + ys) % 255], axis=-1)
    return np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)


def request(seed: int) -> RestoreRequest:
    return RestoreRequest(
        image=photo(seed=seed), task="reconstruct", quick=True, iteration_scale=0.05, class_index=1 + seed,
        seed=seed,
    )


def largest_difference(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.max(np.abs(a.astype(int) - b.astype(int))))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny model gains nothing from threads, and on a busy machine they only contend."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def engine(one_thread) -> Engine:
    generator, discriminator = make_tiny_biggan()
    return Engine(load_model((generator, discriminator)), device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def results(engine):
    """Two quick restores of different photos with different classes (weights, z and class all differ)."""
    finished = []
    for seed in (0, 1):
        final = list(engine.restore(request(seed)))[-1]
        finished.append(final.result)
    return finished


def test_jitter_states_render_the_jitter_images_and_share_the_weights(engine, results):
    state = results[0].state
    images = engine.jitter(state, sigma=0.7, count=5, seed=3)
    states = engine.jitter_states(state, sigma=0.7, count=5, seed=3)
    assert len(states) == 5
    for image, jittered in zip(images, states):
        assert jittered.weight_delta is state.weight_delta  # shared, not copied
        assert jittered.class_index == state.class_index
        assert torch.equal(jittered.class_embedding, state.class_embedding)
        assert jittered.z.shape == state.z.shape and not torch.equal(jittered.z, state.z)
        assert largest_difference(engine.render(jittered), image) <= 1
    # Each variation differs from the others, and the noise is scaled by sigma.
    assert not np.array_equal(images[0], images[1])
    stronger = engine.jitter_states(state, sigma=1.4, count=5, seed=3)
    for weak, strong in zip(states, stronger):
        assert torch.allclose(strong.z - state.z, 2 * (weak.z - state.z), atol=1e-5)
    # The render cache follows the state: rendering the parent again gives the parent's image.
    assert largest_difference(engine.render(state), results[0].image) <= 1


def test_jitter_states_are_seeded_and_checked(engine, results):
    state = results[0].state
    first = engine.jitter_states(state, sigma=0.5, count=2, seed=11)
    again = engine.jitter_states(state, sigma=0.5, count=2, seed=11)
    other = engine.jitter_states(state, sigma=0.5, count=2, seed=12)
    assert torch.equal(first[1].z, again[1].z) and not torch.equal(first[1].z, other[1].z)
    assert first[1].info["jitter"] == {"sigma": 0.5, "seed": 11, "index": 1}
    assert torch.equal(engine.jitter_states(state, sigma=0.0, count=1)[0].z, state.z)
    with pytest.raises(BadInputError, match="strength -0.1"):
        engine.jitter_states(state, sigma=-0.1, count=2)
    with pytest.raises(BadInputError, match="count 0"):
        engine.jitter_states(state, sigma=0.5, count=0)


def test_a_transferred_state_renders_the_transfer_image(engine, results):
    state = results[0].state
    assert engine.transferred_state(state, state.class_index) is state
    other_class = (state.class_index + 3) % 10
    moved = engine.transferred_state(state, other_class)
    assert moved.class_index == other_class and moved.weight_delta is state.weight_delta
    assert torch.equal(moved.z, state.z)
    assert largest_difference(engine.render(moved), engine.transfer(state, other_class)) <= 1
    assert not np.array_equal(engine.render(moved), results[0].image)
    with pytest.raises(BadInputError, match="class index 10"):
        engine.transferred_state(state, 10)


def test_an_edited_result_is_put_back_into_the_photo(engine, results):
    parent = results[0]
    # Editing nothing reproduces the restore's own composite.
    same = engine.edited_result(parent, parent.state, request=request(0))
    assert same.composite.shape == parent.composite.shape
    assert largest_difference(same.composite, parent.composite) <= 1
    assert largest_difference(same.degraded, parent.degraded) <= 1
    # A jittered variation changes the image and the composite, and keeps the run's facts.
    [jittered] = engine.jitter_states(parent.state, sigma=1.0, count=1, seed=5)
    edited = engine.edited_result(parent, jittered, request=request(0))
    assert edited.state is jittered and edited.class_index == parent.class_index
    assert edited.top_classes == parent.top_classes and edited.steps_done == parent.steps_done
    assert largest_difference(edited.image, engine.render(jittered)) <= 1
    assert largest_difference(edited.composite, parent.composite) > 1
    assert engine.edited_result(parent, jittered).composite is None


def test_one_morph_renderer_moves_between_segments(engine, results):
    a, b = results
    morpher = MorphRenderer(engine, a.state, b.state)
    generator = morpher.generator
    assert largest_difference(morpher.render(0.0), a.image) <= 1
    assert largest_difference(morpher.render(1.0), b.image) <= 1
    middle = morpher.render(0.5)
    assert largest_difference(middle, a.image) > 1 and largest_difference(middle, b.image) > 1
    morpher.retarget(b.state, a.state)
    assert morpher.generator is generator  # preallocated once
    assert largest_difference(morpher.render(0.0), b.image) <= 1
    assert largest_difference(morpher.render(1.0), a.image) <= 1
    # After a pair that changed B's weights, a pair without them must not keep them.
    morpher.retarget(a.state, a.state)
    assert largest_difference(morpher.render(0.5), a.image) <= 1


def test_a_morph_refuses_a_state_of_another_model(engine, results):
    other_generator, other_discriminator = make_tiny_biggan(seed=5)
    other = Engine(load_model((other_generator, other_discriminator)), device="cpu", precision="fp32")
    morpher = MorphRenderer(engine, results[0].state, results[1].state)
    foreign = list(other.restore(request(0)))[-1].result.state
    with pytest.raises(BadInputError, match="load that model"):
        morpher.retarget(results[0].state, foreign)
