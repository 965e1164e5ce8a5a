"""Shared fixtures. Tests never download anything; tests that need ../shared/corpus skip without it."""

from __future__ import annotations

import os

# OpenMP threads that busy-wait make every torch op 10-25x slower when the 2 cores are shared (subprocesses,
# torchrun workers): wait passively. Set before torch is imported; a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("BRUSHWORK_CORPUS", ROOT.parent / "shared" / "corpus"))


@pytest.fixture(scope="session", autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test session gets its own model cache, so tests never depend on a user's cache."""
    home = tmp_path_factory.mktemp("brushwork_home")
    os.environ["BRUSHWORK_HOME"] = str(home)
    return home


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not (CORPUS / "styles").is_dir() or not (CORPUS / "content").is_dir():
        pytest.skip("../shared/corpus is not available")
    return CORPUS


@pytest.fixture(scope="module")
def train_images(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two small folders of smooth pattern images (content, style) for the training tests."""
    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("train_data")
    for name, seed in (("content", 0), ("style", 1)):
        folder = root / name
        folder.mkdir()
        rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[0:40, 0:48] / 40.0
        for i in range(3):
            a = np.stack([np.sin(xx * rng.uniform(2, 9) + rng.uniform(0, 6)) for _ in range(3)], -1) * 0.5 + 0.5
            a = a * np.cos(yy * rng.uniform(1, 5))[..., None] ** 2
            Image.fromarray((a * 255).astype(np.uint8)).save(folder / f"{i}.png")
    return root / "content", root / "style"
