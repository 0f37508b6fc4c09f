"""Figures 3 and 4: the drawn bars and points equal the numbers in the metrics files."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from multirater.cli import main  # noqa: E402
from multirater.figures.calibration import ensemble_size_figure, reliability_figure  # noqa: E402


def bins(precisions, confidences, counts):
    edges = np.linspace(0, 1, len(precisions) + 1)
    return [{"lower": float(edges[i]), "upper": float(edges[i + 1]), "count": c, "confidence": conf, "precision": p}
            for i, (p, conf, c) in enumerate(zip(precisions, confidences, counts))]


def metrics(dece5, dece75, rel5, rel75):
    return {"settings": {}, "metrics": [{"metric": "D-ECE", "iou": 0.5, "value": dece5},
                                        {"metric": "D-ECE", "iou": 0.75, "value": dece75}],
            "reliability": {"0.5": rel5, "0.75": rel75}}


LSE = metrics(0.15, 0.25, bins([0.1, 0.0, 0.5, 0.9], [0.2, None, 0.6, 0.8], [5, 0, 3, 2]),
              bins([0.0, 0.2, 0.3, 0.7], [0.1, 0.4, 0.6, 0.9], [1, 1, 1, 1]))
RSE = metrics(0.08, 0.12, bins([0.2, 0.3, 0.6, 0.8], [0.1, 0.4, 0.6, 0.9], [1, 2, 3, 4]),
              bins([0.1, 0.3, 0.5, 0.7], [0.1, 0.4, 0.6, 0.9], [4, 3, 2, 1]))


def bar_heights(ax):
    """(bottom, height) of each drawn bar, in drawing order."""
    return [(p.get_y(), p.get_height()) for p in ax.patches]


def test_reliability_panels_match_bins():
    fig = reliability_figure(LSE, RSE, size=4)
    axes = np.array(fig.axes).reshape(2, 2)
    ax = axes[0][0]  # LSE at IoU 0.5
    drawn = bar_heights(ax)
    # filled bins only (bin 2 is empty): precision bars, then gap bars from precision to confidence
    assert [h for _, h in drawn[:3]] == pytest.approx([0.1, 0.5, 0.9])
    assert [v for bar in drawn[3:] for v in bar] == pytest.approx([0.1, 0.1, 0.5, 0.1, 0.9, -0.1])
    assert "LSE (4 models), IoU = 0.5" == ax.get_title()
    assert any(t.get_text() == "D-ECE = 0.150" for t in ax.texts)
    assert any(t.get_text() == "D-ECE = 0.120" for t in axes[1][1].texts)
    assert axes[1][1].get_title() == "RSE (4 models), IoU = 0.75"


def test_reliability_cli_writes_png_and_pdf(tmp_path):
    (tmp_path / "lse.json").write_text(json.dumps(LSE))
    (tmp_path / "rse.json").write_text(json.dumps(RSE))
    stem = tmp_path / "figs" / "fig3"
    assert main(["figures", "reliability", "--lse", str(tmp_path / "lse.json"), "--rse",
                 str(tmp_path / "rse.json"), "--out", str(stem)]) == 0
    assert (tmp_path / "figs" / "fig3.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "figs" / "fig3.pdf").read_bytes()[:4] == b"%PDF"


def test_ensemble_size_points_are_bootstrap_means_with_std_bars(tmp_path):
    rows = []
    for kind, base in (("lse", 0.15), ("rse", 0.08)):
        for size in (2, 4):
            rows.append({"kind": kind, "size": size, "strategy": "", "config_id": "", "metric": "D-ECE", "iou": 0.5,
                         "value": base, "mean": base + size / 100, "std": 0.01 * size, "p2.5": 0, "p97.5": 0})
            rows.append({"kind": kind, "size": size, "strategy": "", "config_id": "", "metric": "mAP", "iou": None,
                         "value": 0.5, "mean": 0.4 + size / 100, "std": 0.005, "p2.5": 0, "p97.5": 0})
    rows.append({"kind": "single", "size": 1, "strategy": "ls", "config_id": "x", "metric": "mAP", "iou": None,
                 "value": 0.9, "mean": 0.9, "std": 0.1, "p2.5": 0, "p97.5": 0})
    table = pd.DataFrame(rows)
    fig = ensemble_size_figure(table)
    dece_ax, map_ax = fig.axes[0], fig.axes[1]
    assert dece_ax.get_title() == "D-ECE (IoU = 0.5)"
    lse, rse = dece_ax.containers  # one errorbar container per strategy, LSE first
    assert lse.get_label() == "LSE" and rse.get_label() == "RSE"
    assert lse.lines[0].get_ydata() == pytest.approx([0.17, 0.19])
    assert rse.lines[0].get_ydata() == pytest.approx([0.10, 0.12])
    # error bars: the vertical segments span mean - std .. mean + std
    segments = lse.lines[2][0].get_segments()
    assert [v for s in segments for v in (s[0][1], s[1][1])] == pytest.approx([0.15, 0.19, 0.15, 0.23])
    assert map_ax.containers[0].lines[0].get_ydata() == pytest.approx([0.42, 0.44])  # singles are not drawn
    assert len(map_ax.containers) == 2
    path = tmp_path / "metrics.csv"
    table.to_csv(path, index=False)
    assert main(["figures", "ensemble-size", "--metrics", str(path), "--out", str(tmp_path / "fig4")]) == 0
    assert (tmp_path / "fig4.png").exists() and (tmp_path / "fig4.pdf").exists()


def test_reliability_panels_print_the_reference_range():
    lse = {**LSE, "dece_reference": {"draws": 200, "seed": 0, "mean": 0.05, "p2.5": 0.031, "p97.5": 0.072}}
    fig = reliability_figure(lse, RSE, size=4)
    axes = np.array(fig.axes).reshape(2, 2)
    texts = [t.get_text() for t in axes[1][0].texts]
    assert "D-ECE = 0.250" in texts and "perfectly calibrated: 0.031-0.072" in texts
    assert not any(t.get_text().startswith("perfectly") for t in axes[0][1].texts)  # RSE has no reference


def test_ensemble_size_shades_the_reference_band():
    """Each kind's D-ECE panel gets a band from ref_p2.5 to ref_p97.5 at its sizes; mAP gets none."""
    rows = []
    for kind, low, high in (("lse", 0.03, 0.08), ("rse", 0.02, 0.06)):
        for size in (2, 4):
            rows.append({"kind": kind, "size": size, "metric": "D-ECE", "iou": 0.5, "value": 0.1, "mean": 0.1,
                         "std": 0.01, "ref_mean": 0.05, "ref_p2.5": low + size / 1000, "ref_p97.5": high})
            rows.append({"kind": kind, "size": size, "metric": "mAP", "iou": None, "value": 0.5, "mean": 0.5,
                         "std": 0.01, "ref_mean": None, "ref_p2.5": None, "ref_p97.5": None})
    fig = ensemble_size_figure(pd.DataFrame(rows))
    dece_ax, map_ax = fig.axes[0], fig.axes[1]
    from matplotlib.collections import PolyCollection

    def bands(ax):
        return [c for c in ax.collections if isinstance(c, PolyCollection)]

    lse_band, rse_band = bands(dece_ax)
    assert lse_band.get_label() == "LSE perfectly calibrated (95 %)"
    ys = lse_band.get_paths()[0].vertices[:, 1]
    assert ys.min() == pytest.approx(0.032) and ys.max() == pytest.approx(0.08)
    # the band's lower edge follows ref_p2.5 at each size (0.032 at 2, 0.034 at 4)
    xs = lse_band.get_paths()[0].vertices[:, 0]
    assert set(np.round(ys[ys < 0.05], 6)) == {0.032, 0.034}
    assert xs.min() == pytest.approx(2 - 0.08 * 2) and xs.max() == pytest.approx(4 - 0.08 * 2)  # LSE's offset
    assert rse_band.get_paths()[0].vertices[:, 1].max() == pytest.approx(0.06)
    assert bands(map_ax) == []
