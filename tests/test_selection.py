"""Selection and ensemble membership: ranking by validation mAP, skipping failed models, LSE/RSE members."""

from __future__ import annotations

import json

import pytest

from multirater.cli import main
from multirater.core.errors import UserError
from multirater.selection.ranking import ensemble_members, rank_models, read_selection, read_status, write_selection


def status(strategy, cid, val_map, state="ok"):
    return {"status": state, "strategy": strategy, "config_id": cid, "best_val_map": val_map}


STATUSES = [
    status("ls", "aaaa0000", 0.50),
    status("ls", "bbbb0000", 0.70),
    status("ls", "cccc0000", 0.90, "diverged"),
    status("ls", "dddd0000", 0.70),  # ties with bbbb0000: the smaller id ranks first
    status("ls", "eeee0000", 0.95, "failed"),
    status("rs-r2", "aaaa0000", 0.30),
    status("rs-r1", "aaaa0000", 0.20),
    status("rs-r1", "bbbb0000", 0.60),
    status("rs-r2", "bbbb0000", 0.10),
    status("rs-r2", "cccc0000", None, "out_of_memory"),
]


def by_key(rows):
    return {(r["strategy"], r["config_id"]): r for r in rows}


def test_ranks_by_validation_map_and_skips_failed_models():
    rows = rank_models(STATUSES, top_ls=2, top_rs=1)
    got = by_key(rows)
    # ls: bbbb (0.70), dddd (0.70, tie -> larger id second), aaaa (0.50); diverged/failed unranked
    assert [got[("ls", c)]["rank"] for c in ("bbbb0000", "dddd0000", "aaaa0000")] == [1, 2, 3]
    assert [got[("ls", c)]["selected"] for c in ("bbbb0000", "dddd0000", "aaaa0000")] == [True, True, False]
    for cid in ("cccc0000", "eeee0000"):
        assert got[("ls", cid)]["rank"] is None and got[("ls", cid)]["selected"] is False
    assert got[("rs-r1", "bbbb0000")]["rank"] == 1 and got[("rs-r1", "bbbb0000")]["selected"]
    assert got[("rs-r1", "aaaa0000")]["selected"] is False
    assert got[("rs-r2", "aaaa0000")]["rank"] == 1 and got[("rs-r2", "bbbb0000")]["rank"] == 2
    assert got[("rs-r2", "cccc0000")]["rank"] is None
    # order: ls first, then raters by name; within a strategy by rank, unranked last
    assert [r["strategy"] for r in rows] == ["ls"] * 5 + ["rs-r1"] * 2 + ["rs-r2"] * 3
    assert [r["config_id"] for r in rows[:5]] == ["bbbb0000", "dddd0000", "aaaa0000", "cccc0000", "eeee0000"]


def test_selection_csv_round_trip(tmp_path):
    rows = rank_models(STATUSES, top_ls=2, top_rs=1)
    write_selection(tmp_path / "selection.csv", rows)
    header = (tmp_path / "selection.csv").read_text().splitlines()[0]
    assert header == "strategy,config_id,status,val_map,rank,selected"
    assert read_selection(tmp_path / "selection.csv") == rows


def test_ensemble_members_lse_and_rse():
    rows = rank_models(STATUSES, top_ls=3, top_rs=2)
    assert ensemble_members(rows, "lse", 2) == [("ls", "bbbb0000", "ls"), ("ls", "dddd0000", "ls")]
    assert ensemble_members(rows, "rse", 4) == [
        ("rs-r1", "bbbb0000", "r1"), ("rs-r1", "aaaa0000", "r1"),
        ("rs-r2", "aaaa0000", "r2"), ("rs-r2", "bbbb0000", "r2"),
    ]
    with pytest.raises(UserError, match="not divisible"):
        ensemble_members(rows, "rse", 3)
    with pytest.raises(UserError, match="needs 4 selected ls models but only 3"):
        ensemble_members(rows, "lse", 4)
    with pytest.raises(UserError, match="needs 3 selected rs-r1"):
        ensemble_members(rows, "rse", 6)


def test_read_status_names_file_and_key(tmp_path):
    bad = tmp_path / "status.json"
    bad.write_text(json.dumps({"strategy": "ls", "config_id": "x", "status": "exploded"}))
    with pytest.raises(UserError) as err:
        read_status(bad)
    assert str(bad) in str(err.value) and "status" in str(err.value) and "exploded" in str(err.value)


def test_cli_select_and_members(tmp_path, capsys):
    files = []
    for i, s in enumerate(STATUSES):
        path = tmp_path / "models" / s["strategy"] / s["config_id"] / "status.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(s))
        files.append(str(path))
    out = tmp_path / "selection.csv"
    assert main(["select", "--top-ls", "2", "--top-rs", "1", "--out", str(out), *files]) == 0
    assert "skipped (not ok)" in capsys.readouterr().out
    assert main(["members", "--selection", str(out), "--kind", "rse", "--size", "2", "--predictions", "preds",
                 "--out", str(tmp_path / "m.txt"), "--sources-out", str(tmp_path / "s.txt")]) == 0
    assert (tmp_path / "m.txt").read_text().split() == ["preds/rs-r1/bbbb0000.json", "preds/rs-r2/aaaa0000.json"]
    assert (tmp_path / "s.txt").read_text().split() == ["r1", "r2"]
    # too few selected models: one error line, exit 2, no output
    code = main(["members", "--selection", str(out), "--kind", "lse", "--size", "4", "--predictions", "p",
                 "--out", str(tmp_path / "m4.txt"), "--sources-out", str(tmp_path / "s4.txt")])
    assert code == 2 and not (tmp_path / "m4.txt").exists()
    assert "needs 4 selected ls models" in capsys.readouterr().err
