"""Shared test helpers: a tiny hand-written multi-rater dataset on disk; the shared workflow runs
(workflow_runs.py); under pytest-xdist, each test on the worker of the expensive fixtures it shares."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from worker_groups import group_and_order, name_groups_in_node_ids
from workflow_runs import apply_run, demo_shaped_run  # noqa: F401  (session fixtures: one run each)


def write_tiny_dataset(root: Path, n_images: int = 4, size: int = 32) -> Path:
    """Write a valid dataset (2 raters, ``n_images`` multi-rater images, 1 consensus image); return its manifest.

    Rater 1 draws two boxes per image, rater 2 one (the first of rater 1's, shifted by 1 px).
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    images = []
    for i in range(1, n_images + 2):
        name = f"im{i}.png"
        Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8), mode="L").save(root / "images" / name)
        images.append({"id": i, "file_name": name, "width": size, "height": size})
    cats = [{"id": 1, "name": "organoid"}]
    r1, r2, cons = [], [], []
    for im in images[:n_images]:
        i = im["id"]
        r1.append({"id": 10 * i, "image_id": i, "category_id": 1, "bbox": [2, 2, 10, 10],
                   "attributes": {"source": "pretrained"}})
        r1.append({"id": 10 * i + 1, "image_id": i, "category_id": 1, "bbox": [16, 16, 8, 8],
                   "attributes": {"source": "manual"}})
        r2.append({"id": 10 * i, "image_id": i, "category_id": 1, "bbox": [3, 2, 10, 10],
                   "attributes": {"source": "pretrained"}})
    cons.append({"id": 1, "image_id": images[-1]["id"], "category_id": 1, "bbox": [4, 4, 6, 6]})
    for name, anns, imgs in (("rater1", r1, images[:n_images]), ("rater2", r2, images[:n_images]),
                             ("consensus", cons, images[n_images:])):
        (root / f"{name}.json").write_text(json.dumps({"images": imgs, "annotations": anns, "categories": cats}, indent=1))
    manifest = root / "dataset.yaml"
    manifest.write_text(yaml.safe_dump({"name": "tiny", "images": "images",
                                        "raters": {"rater1": "rater1.json", "rater2": "rater2.json"},
                                        "consensus": "consensus.json"}))
    return manifest


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    return write_tiny_dataset(tmp_path / "data")


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]):
    """Under pytest-xdist, the tests sharing an expensive fixture on one worker, the costliest first
    (worker_groups.py): groups before every other plugin's hook, their names in the node ids after."""
    group_and_order(items)
    result = yield
    name_groups_in_node_ids(config, items)
    return result
