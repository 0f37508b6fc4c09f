"""The learned-bias diagnostic (``multirater learned-bias``) on hand-made test objects, selection and detections,
against numbers computed by hand."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from multirater.cli import main
from multirater.evaluation.learned_bias import auc

OBJECTS = """image_id,object,kind,x,y,w,h,side_at_256,viability,proposed,consensus,by_rater1,by_rater2,n_raters
1,0,organoid,0,0,10,10,10,0.9,1,1,1,1,2
1,1,organoid,20,20,10,10,10,0.3,1,1,1,0,1
1,2,organoid,40,40,10,10,10,0.2,0,0,1,0,1
1,3,organoid,60,60,10,10,10,0.8,1,1,0,1,1
1,4,debris,80,80,10,10,10,,0,0,0,0,0
1,5,organoid,0,50,10,10,10,0.7,0,1,0,1,1
"""
# o0 both raters; o1, o2 rater1 only; o3, o5 rater2 only; o4 nobody.
SELECTION = """strategy,config_id,status,val_map,rank,selected
ls,aaaaaaaa,ok,0.5,1,true
ls,bbbbbbbb,ok,0.4,2,true
ls,eeeeeeee,ok,0.1,3,false
rs-rater1,cccccccc,ok,0.5,1,true
rs-rater2,dddddddd,ok,0.5,1,true
"""
BOX = {0: [0, 0, 10, 10], 1: [20, 20, 10, 10], 2: [40, 40, 10, 10], 3: [60, 60, 10, 10], 5: [0, 50, 10, 10]}
DETECTIONS = {
    # a box shifted by 1 px still matches (IoU 0.82); one shifted by 5 px does not (0.33); the best score counts
    ("ls", "aaaaaaaa"): [([0, 0, 10, 10], 0.9), ([21, 20, 10, 10], 0.5), ([20, 20, 10, 10], 0.3),
                         ([45, 40, 10, 10], 0.8), (BOX[3], 0.4)],
    ("ls", "bbbbbbbb"): [(BOX[0], 0.7), (BOX[1], 0.3), (BOX[2], 0.6), (BOX[3], 0.2), (BOX[5], 0.5)],
    ("ls", "eeeeeeee"): [(BOX[1], 1.0)],  # not selected: never counts
    ("rs-rater1", "cccccccc"): [(BOX[1], 0.8), (BOX[2], 0.7), (BOX[3], 0.1), (BOX[5], 0.5)],
    ("rs-rater2", "dddddddd"): [(BOX[1], 0.2), (BOX[2], 0.6), (BOX[3], 0.9), (BOX[5], 0.4)],
}


def write_inputs(folder):
    (folder / "test_objects.csv").write_text(OBJECTS)
    (folder / "selection.csv").write_text(SELECTION)
    paths = []
    for (strategy, config_id), dets in DETECTIONS.items():
        path = folder / f"{strategy}-{config_id}.json"
        path.write_text(json.dumps({
            "format": "multirater-detections", "image_ids": [1, 2],
            "detections": [{"image_id": 1, "category_id": 1, "bbox": box, "score": s} for box, s in dets],
            "meta": {"identity": {"strategy": strategy, "config_id": config_id}}}))
        paths.append(str(path))
    return paths


def test_learned_bias_by_hand(tmp_path, capsys):
    paths = write_inputs(tmp_path)
    out = tmp_path / "learned_bias.csv"
    assert main(["learned-bias", "--objects", str(tmp_path / "test_objects.csv"), "--selection",
                 str(tmp_path / "selection.csv"), "--predictions", *paths, "--out", str(out)]) == 0
    row = pd.read_csv(out).iloc[0]
    assert (row["n_rater1_only"], row["n_rater2_only"], row["n_all_raters"]) == (2, 2, 1)
    # LS scores: model a 0.9, 0.5, 0 (its box near o2 overlaps too little), 0.4, -, 0; model b 0.7, 0.3, 0.6,
    # 0.2, -, 0.5
    assert row["score_ls_on_rater1_only"] == pytest.approx((0.5 + 0 + 0.3 + 0.6) / 4)
    assert row["score_ls_on_rater2_only"] == pytest.approx((0.4 + 0 + 0.2 + 0.5) / 4)
    assert row["score_ls_on_all_raters"] == pytest.approx(0.8)
    assert row["ls_score_one_rater"] == pytest.approx(((0.5 + 0 + 0.4 + 0) / 4 + (0.3 + 0.6 + 0.2 + 0.5) / 4) / 2)
    assert row["score_rs-rater1_on_rater1_only"] == pytest.approx(0.75)
    assert row["score_rs-rater1_on_rater2_only"] == pytest.approx(0.3)
    assert row["score_rs-rater2_on_rater1_only"] == pytest.approx(0.4)
    assert row["score_rs-rater2_on_rater2_only"] == pytest.approx(0.65)
    assert row["score_rs-rater1_on_all_raters"] == 0.0
    # rs-rater1 - rs-rater2: rater 1's objects 0.6 and 0.1, rater 2's -0.8 and 0.1: 3 pairs above, 1 tie
    assert row["learned_bias_auc"] == pytest.approx(3.5 / 4)
    assert "learned-bias AUC 0.875" in capsys.readouterr().out


def test_a_selected_model_without_predictions_is_an_error(tmp_path, capsys):
    paths = write_inputs(tmp_path)
    out = tmp_path / "learned_bias.csv"
    assert main(["learned-bias", "--objects", str(tmp_path / "test_objects.csv"), "--selection",
                 str(tmp_path / "selection.csv"), "--predictions", *paths[:2], "--out", str(out)]) == 2
    assert "no predictions given for selected model(s) ['rs-rater1/cccccccc', 'rs-rater2/dddddddd']" in \
        capsys.readouterr().err
    assert not out.exists()


def test_auc_counts_ties_half():
    import numpy as np

    assert auc(np.array([2.0, 1.0]), np.array([0.0, 1.0])) == 0.875
    assert np.isnan(auc(np.array([]), np.array([1.0])))
