"""Inter-rater agreement: hand-computed F1 and counts, the CSV/figure outputs, and the shared plot style."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import write_tiny_dataset
from multirater.agreement.commands import OUTPUT_FILES
from multirater.agreement.statistics import counts, f1_vs_iou, pair_f1
from multirater.cli import main
from multirater.core.plot_style import STRATEGY_COLORS, apply_style, rater_colors, save_figure
from multirater.data.dataset import load_dataset


def test_pair_f1_hand_computed():
    a = np.array([[0, 0, 10, 10], [20, 20, 4, 4]], dtype=float)
    b = np.array([[1, 0, 10, 10]], dtype=float)  # IoU with a[0] = 90 / 110 = 0.818
    assert pair_f1(a, b, 0.5) == pytest.approx(2 * 1 / 3)
    assert pair_f1(a, b, 0.82) == 0.0
    assert pair_f1(b, a, 0.5) == pair_f1(a, b, 0.5)
    assert pair_f1(np.zeros((0, 4)), np.zeros((0, 4)), 0.5) == 1.0
    assert pair_f1(a, np.zeros((0, 4)), 0.5) == 0.0


def test_pair_f1_is_one_to_one_and_optimal():
    # Greedy would pair a1 with b2 (IoU 0.818) and leave a2 alone; the optimal one-to-one assignment
    # pairs a1-b1 (70/130 = 0.538) and a2-b2 (70/130 = 0.538): two matches, F1 = 1.
    a = np.array([[1, 0, 10, 10], [-3, 0, 10, 10]], dtype=float)
    b = np.array([[4, 0, 10, 10], [0, 0, 10, 10]], dtype=float)
    assert pair_f1(a, b, 0.5) == pytest.approx(1.0)
    # One box cannot match two: two identical boxes against one.
    assert pair_f1(np.array([[0, 0, 5, 5]] * 2, dtype=float), np.array([[0, 0, 5, 5]], dtype=float), 0.5) == pytest.approx(2 / 3)


def test_counts_and_f1_on_tiny_dataset(tiny_dataset):
    ds = load_dataset(tiny_dataset)
    table = counts(ds)
    assert list(table.columns) == ["image_id", "rater", "n_objects", "n_retained", "n_added"]
    r1 = table[table.rater == "rater1"]
    r2 = table[table.rater == "rater2"]
    assert r1[["n_objects", "n_retained", "n_added"]].values.tolist() == [[2, 1, 1]] * 4
    assert r2[["n_objects", "n_retained", "n_added"]].values.tolist() == [[1, 1, 0]] * 4
    f1 = f1_vs_iou(ds)
    assert f1["iou"].tolist() == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    # rater2's box is rater1's first shifted by 1 px: IoU 90/110 = 0.818 -> matched up to 0.8.
    expected = [2 / 3] * 8 + [0.0]
    np.testing.assert_allclose(f1["f1_mean"], expected)
    np.testing.assert_allclose(f1["f1_std"], 0.0)


def test_agreement_command_writes_tables_and_figures(tmp_path, capsys):
    manifest = write_tiny_dataset(tmp_path / "data", size=64)
    out = tmp_path / "agreement"
    assert main(["agreement", "--dataset", str(manifest), "--out", str(out), "--image", "2"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)
    f1 = pd.read_csv(out / "f1_vs_iou.csv")
    assert list(f1.columns) == ["rater_a", "rater_b", "iou", "f1_mean", "f1_std"]
    assert f1.loc[f1.iou == 0.5, "f1_mean"].item() == pytest.approx(2 / 3)
    assert pd.read_csv(out / "counts.csv")["n_objects"].sum() == 4 * 3
    for stem in ("fig1_rater_agreement", "fig2_interrater"):
        with Image.open(out / f"{stem}.png") as im:
            assert min(im.size) > 300  # printable resolution
        assert (out / f"{stem}.pdf").read_bytes().startswith(b"%PDF")


def test_agreement_bad_image_leaves_nothing(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "agreement"
    assert main(["agreement", "--dataset", str(tiny_dataset), "--out", str(out), "--image", "5"]) == 2
    assert "--image: image id 5 is not a multi-rater image" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


def test_agreement_with_three_raters(tmp_path):
    manifest = write_tiny_dataset(tmp_path / "data")
    root = manifest.parent
    r3 = json.loads((root / "rater2.json").read_text())
    for ann in r3["annotations"]:
        ann["bbox"] = [16, 16, 8, 8]  # rater3 agrees with rater1's second box exactly
    (root / "rater3.json").write_text(json.dumps(r3))
    manifest.write_text(manifest.read_text().replace("rater2: rater2.json", "rater2: rater2.json\n  rater3: rater3.json"))
    f1 = f1_vs_iou(load_dataset(manifest))
    pairs = sorted(set(zip(f1.rater_a, f1.rater_b)))
    assert pairs == [("rater1", "rater2"), ("rater1", "rater3"), ("rater2", "rater3")]
    at_09 = f1[f1.iou == 0.9].set_index(["rater_a", "rater_b"])["f1_mean"]
    assert at_09[("rater1", "rater3")] == pytest.approx(2 / 3)
    assert at_09[("rater2", "rater3")] == 0.0
    assert main(["agreement", "--dataset", str(manifest), "--out", str(tmp_path / "ag")]) == 0


def _with_second_pass(manifest):
    """rater1 annotates images 1 and 2 again: image 1 with its first box shifted by 1 px (IoU 90/110) and
    its second box forgotten, image 2 exactly as the first time."""
    root = manifest.parent
    coco = json.loads((root / "rater1.json").read_text())
    coco["images"] = [im for im in coco["images"] if im["id"] in (1, 2)]
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] == 2] + [
        {"id": 99, "image_id": 1, "category_id": 1, "bbox": [3, 2, 10, 10], "attributes": {"source": "pretrained"}}
    ]
    (root / "rater1_pass2.json").write_text(json.dumps(coco))
    manifest.write_text(manifest.read_text() + "repeats: {rater1: rater1_pass2.json}\n")
    return manifest


def test_intra_rater_rows_hand_computed(tmp_path):
    ds = load_dataset(_with_second_pass(write_tiny_dataset(tmp_path / "data")))
    f1 = f1_vs_iou(ds)
    assert list(f1.columns) == ["rater_a", "rater_b", "iou", "f1_mean", "f1_std", "agreement"]
    inter = f1[f1.agreement == "inter"]
    assert set(zip(inter.rater_a, inter.rater_b)) == {("rater1", "rater2")}
    np.testing.assert_allclose(inter["f1_mean"], [2 / 3] * 8 + [0.0])  # as without the second pass
    intra = f1[f1.agreement == "intra"]
    assert set(zip(intra.rater_a, intra.rater_b)) == {("rater1", "rater1")}
    assert intra["iou"].tolist() == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    # Image 1: one of 2 + 1 boxes matched up to IoU 0.8 (F1 2/3), none at 0.9; image 2: F1 1.
    np.testing.assert_allclose(intra["f1_mean"], [(2 / 3 + 1) / 2] * 8 + [0.5])
    np.testing.assert_allclose(intra["f1_std"], [(1 / 3) / np.sqrt(2)] * 8 + [1 / np.sqrt(2)])


def test_agreement_command_reports_intra_beside_inter(tmp_path, capsys):
    manifest = _with_second_pass(write_tiny_dataset(tmp_path / "data", size=64))
    out = tmp_path / "agreement"
    assert main(["agreement", "--dataset", str(manifest), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert "inter-rater F1@IoU0.5 0.667 (mean over 1 pair)" in summary
    assert "intra-rater (pass 1 vs 2) 0.833 (rater1 0.833)" in summary
    table = pd.read_csv(out / "f1_vs_iou.csv")
    assert table.groupby("agreement").size().to_dict() == {"inter": 9, "intra": 9}
    with Image.open(out / "fig2_interrater.png") as im:
        assert min(im.size) > 300


def test_without_second_passes_the_summary_says_so(tiny_dataset, tmp_path, capsys):
    assert main(["agreement", "--dataset", str(tiny_dataset), "--out", str(tmp_path / "ag")]) == 0
    assert "intra-rater: no second passes in this dataset" in capsys.readouterr().out
    assert "agreement" not in pd.read_csv(tmp_path / "ag" / "f1_vs_iou.csv").columns


def test_style_palette_and_atomic_save(tmp_path):
    apply_style()
    import matplotlib.pyplot as plt

    assert len(set(rater_colors(5))) == 5
    assert set(STRATEGY_COLORS) == {"LSE", "RSE", "LS", "RS"}
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    paths = save_figure(fig, tmp_path / "figs" / "demo")
    assert [p.name for p in paths] == ["demo.png", "demo.pdf"]
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["demo.pdf", "demo.png"]  # no temp files


def test_statistics_import_neither_figures_nor_matplotlib():
    """The figures draw what the statistics compute, never the other way round (no import cycle)."""
    import subprocess
    import sys

    code = (
        "import sys, multirater.agreement.statistics; "
        "bad = [m for m in ('multirater.agreement.figures', 'matplotlib') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
