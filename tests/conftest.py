"""Shared test setup: headless Qt, an optional Qt import block, and BigGAN fixtures.

``QT_QPA_PLATFORM`` is set before anything can import Qt, so app tests run
without a display. With ``DGP_STUDIO_BLOCK_QT=1`` in the environment (CI's
engine-only run, together with ``-p no:pytest-qt -p no:platformdirs``, the
two plugins that import those packages themselves), importing PySide6,
shiboken6, qasync or platformdirs raises ``ModuleNotFoundError``: an engine
module that reaches for the GUI stack fails its tests instead of passing
only because the packages happen to be installed.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import importlib.abc
import sys
from pathlib import Path

import pytest

BLOCK_QT_VARIABLE = "DGP_STUDIO_BLOCK_QT"
BLOCKED_TOP_LEVEL_MODULES = frozenset({"PySide6", "shiboken6", "qasync", "platformdirs"})

REPO_ROOT = Path(__file__).resolve().parent.parent
GOLDEN_FIXTURE_NAME = "biggan128_ch8_golden.pt"


class _BlockedModuleFinder(importlib.abc.MetaPathFinder):
    """Refuses the GUI-side packages the engine must never import."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname.partition(".")[0] in BLOCKED_TOP_LEVEL_MODULES:
            raise ModuleNotFoundError(
                f"{fullname} is blocked for this test run ({BLOCK_QT_VARIABLE}=1): "
                f"the engine must not import the GUI stack.",
                name=fullname,
            )


def _qt_is_blocked() -> bool:
    return os.environ.get(BLOCK_QT_VARIABLE, "") not in ("", "0")


if _qt_is_blocked():
    already_imported = sorted(
        name for name in sys.modules if name.partition(".")[0] in BLOCKED_TOP_LEVEL_MODULES
    )
    if already_imported:
        # A pytest plugin imported them before this file ran, so the block
        # could not prove anything: pytest-qt and platformdirs both register
        # plugins through entry points.
        raise RuntimeError(
            f"{BLOCK_QT_VARIABLE}=1 but {', '.join(already_imported)} was imported before "
            f"tests/conftest.py; run pytest with -p no:pytest-qt -p no:platformdirs."
        )
    sys.meta_path.insert(0, _BlockedModuleFinder())


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    # pyproject.toml sets pytest-qt's ``qt_api``; when that plugin is disabled
    # for the Qt-free run, declare the key so pytest does not warn about it.
    if not pluginmanager.has_plugin("pytest-qt"):
        parser.addini("qt_api", "pytest-qt's Qt binding (unused while pytest-qt is disabled)")


# --------------------------------------------------------------------------
# Reference data in shared/


#: Copies of the reference files the tests need, vendored so a fresh clone runs every test.
VENDORED_FIXTURES = REPO_ROOT / "tests" / "fixtures"
_VENDORED_NAMES = {
    ("fixtures", "biggan128_ch8_golden.pt"): "biggan128_ch8_golden.pt",
    ("fixtures", "biggan_checkpoint_manifests.json"): "biggan_checkpoint_manifests.json",
    ("data", "tiny-imagenet-200", "classes.json"): "tiny-imagenet-200-classes.json",
}


def shared_path(*parts: str) -> Path | None:
    """Locate a reference file: the vendored copy in ``tests/fixtures/``, else under ``shared/``.

    ``shared/`` is a sibling of the repository (CI and developer machines) or,
    on some machines, a folder inside it. None if neither has it.
    """
    vendored = _VENDORED_NAMES.get(tuple(parts))
    if vendored is not None and (VENDORED_FIXTURES / vendored).exists():
        return VENDORED_FIXTURES / vendored
    for shared_root in (REPO_ROOT.parent / "shared", REPO_ROOT / "shared"):
        candidate = shared_root.joinpath(*parts)
        if candidate.exists():
            return candidate
    return None


def require_shared_path(*parts: str) -> Path:
    """Like :func:`shared_path`; a missing file skips the test, or fails it under CI (``CI`` set)."""
    found = shared_path(*parts)
    if found is None:
        message = f"reference file {'/'.join(parts)} is neither vendored in tests/fixtures nor under shared/"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI runs every test: vendor it)")
        pytest.skip(message)
    return found


@pytest.fixture(scope="session")
def shared_file():
    """``shared_file(*parts)``: a path under ``shared/``; skips the test if it is absent."""
    return require_shared_path


@pytest.fixture(scope="session")
def golden() -> dict:
    """The BigGAN-128 ch8 golden fixture (reference outputs, losses, gradients).

    Loaded with ``weights_only=True``; see ``shared/fixtures/README.md`` for
    its entries. Tests must not modify it (it is shared by the session).
    """
    import torch

    path = require_shared_path("fixtures", GOLDEN_FIXTURE_NAME)
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="session")
def checkpoint_manifests() -> dict:
    """Key → [shape, dtype] manifests of the released BigGAN checkpoints."""
    import json

    path = require_shared_path("fixtures", "biggan_checkpoint_manifests.json")
    return json.loads(path.read_text(encoding="utf-8"))


TINY_BIGGAN_SEED = 0


def make_tiny_biggan(*, seed: int = TINY_BIGGAN_SEED):
    """A random-weight 32 px BigGAN pair (width 4, 10 classes, dim_z 120, attention at 16 px).

    Orthogonal init from ``seed`` without touching the global RNG state;
    both networks in eval mode. Building it takes milliseconds.
    """
    import torch

    from engine.biggan import BigGANConfig, Discriminator, Generator, orthogonal_init_

    # Width 4 is the smallest that keeps attention: at 32 px every block has
    # 4·ch channels, and attention needs channels // 8 >= 1.
    config = BigGANConfig(
        resolution=32, g_ch=4, d_ch=4, n_classes=10, g_attention=(16,), d_attention=(16,),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = Generator(config)
        discriminator = Discriminator(config)
        orthogonal_init_(generator)
        orthogonal_init_(discriminator)
    return generator.eval(), discriminator.eval()


@pytest.fixture
def tiny_biggan():
    """A fresh ``(G, D)`` from :func:`make_tiny_biggan`; tests may modify it."""
    return make_tiny_biggan()


# --------------------------------------------------------------------------
# Shared by the command-line tests


@pytest.fixture(scope="module")
def tiny_model_files(tmp_path_factory):
    """The tiny BigGAN pair saved as G.safetensors / D.safetensors (fp32): ``(g_path, d_path)``."""
    import torch

    from engine.models import save_biggan_safetensors

    folder = tmp_path_factory.mktemp("model")
    generator, discriminator = make_tiny_biggan()
    g_path, d_path = folder / "G.safetensors", folder / "D.safetensors"
    save_biggan_safetensors(generator, g_path, generator.config, dtype=torch.float32)
    save_biggan_safetensors(discriminator, d_path, generator.config, dtype=torch.float32)
    return g_path, d_path


_STARTUP: list[float] = []


def interpreter_start_seconds() -> float:
    """How long a bare interpreter takes to start here (the machine may be busy): the baseline."""
    import subprocess
    import time

    if not _STARTUP:
        runs = []
        for _ in range(2):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            runs.append(time.perf_counter() - started)
        _STARTUP.append(min(runs))
    return _STARTUP[0]


def refused_quickly(seconds: float) -> bool:
    """Refused within a second of the interpreter's own start-up: before any model or torch loads."""
    return seconds - interpreter_start_seconds() < 1.0
