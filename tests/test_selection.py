"""Selection and ensemble membership: ranking by validation mAP, skipping failed models, LSE/RSE members."""

from __future__ import annotations

import json

import pytest

from multirater.cli import main
from multirater.core.errors import UserError
from multirater.selection.members import read_members
from multirater.io.status import read_status
from multirater.selection.ranking import ensemble_members, rank_models, read_selection, write_selection


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
                 "--out", str(tmp_path / "m.json")]) == 0
    members = json.loads((tmp_path / "m.json").read_text())
    assert [m["detections"] for m in members["members"]] == ["preds/rs-r1/bbbb0000.json", "preds/rs-r2/aaaa0000.json"]
    assert [m["source"] for m in members["members"]] == ["r1", "r2"]
    # the identity travels in the file: kind, size, and each member's strategy and config id
    assert (members["kind"], members["size"]) == ("rse", 2)
    assert [(m["strategy"], m["config_id"]) for m in members["members"]] == [("rs-r1", "bbbb0000"),
                                                                            ("rs-r2", "aaaa0000")]
    assert read_members(tmp_path / "m.json") == members
    # too few selected models: one error line, exit 2, no output
    code = main(["members", "--selection", str(out), "--kind", "lse", "--size", "4", "--predictions", "p",
                 "--out", str(tmp_path / "m4.json")])
    assert code == 2 and not (tmp_path / "m4.json").exists()
    assert "needs 4 selected ls models" in capsys.readouterr().err


@pytest.mark.parametrize("change, item, problem", [
    ({"kind": "xse"}, "kind", "must be one of ['lse', 'rse'], got 'xse'"),
    ({"size": 3}, "members", "must list 3 members (the size), got 2"),
    ({"size": True}, "size", "must be an integer >= 1, got True"),
    ({"format": None}, None, "not a members file"),
])
def test_read_members_names_file_and_item(tmp_path, change, item, problem):
    good = {"format": "multirater-members", "kind": "lse", "size": 2, "members": [
        {"detections": f"p/ls/{c}.json", "strategy": "ls", "config_id": c, "source": "ls"}
        for c in ("aaaa0000", "bbbb0000")]}
    path = tmp_path / "members.json"
    path.write_text(json.dumps({**good, **change}))
    with pytest.raises(UserError) as err:
        read_members(path)
    assert str(err.value).startswith(": ".join(p for p in (str(path), item, problem) if p))


def test_read_members_names_a_members_missing_key(tmp_path):
    path = tmp_path / "members.json"
    path.write_text(json.dumps({"format": "multirater-members", "kind": "lse", "size": 1,
                                "members": [{"detections": "p/ls/a.json", "strategy": "ls", "source": "ls"}]}))
    with pytest.raises(UserError, match=r"members\[0\]\.config_id: missing or not a string: None"):
        read_members(path)


def _detections(path, strategy, cid, score):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "format": "multirater-detections", "image_ids": [1, 2],
        "detections": [{"image_id": 1, "category_id": 1, "bbox": [10.0, 10.0, 20.0, 20.0], "score": score}],
        "meta": {"identity": {"strategy": strategy, "config_id": cid}}}))
    return str(path)


def test_fuse_members_file_records_the_ensemble_identity(tmp_path):
    rows = rank_models(STATUSES, top_ls=2, top_rs=1)
    write_selection(tmp_path / "selection.csv", rows)
    preds = tmp_path / "preds"
    a = _detections(preds / "rs-r1" / "bbbb0000.json", "rs-r1", "bbbb0000", 0.8)
    b = _detections(preds / "rs-r2" / "aaaa0000.json", "rs-r2", "aaaa0000", 0.6)
    members = tmp_path / "members.json"
    assert main(["members", "--selection", str(tmp_path / "selection.csv"), "--kind", "rse", "--size", "2",
                 "--predictions", str(preds), "--out", str(members)]) == 0
    assert main(["fuse", "--members", str(members), "--out", str(tmp_path / "fused.json")]) == 0
    fused = json.loads((tmp_path / "fused.json").read_text())
    assert fused["meta"]["identity"] == {"kind": "rse", "size": 2, "members": [
        {"strategy": "rs-r1", "config_id": "bbbb0000", "source": "r1"},
        {"strategy": "rs-r2", "config_id": "aaaa0000", "source": "r2"}]}
    assert fused["meta"]["fusion"]["inputs"] == [a, b]
    # the same fusion as the positional form with the members' files and sources
    assert main(["fuse", "--out", str(tmp_path / "plain.json"), a, b, "--sources", "r1", "r2"]) == 0
    plain = json.loads((tmp_path / "plain.json").read_text())
    assert plain["detections"] == fused["detections"]
    assert fused["detections"][0]["score"] == pytest.approx((0.8 + 0.6) / 2)
    assert "identity" not in plain["meta"]  # no members file, no ensemble identity


def test_fuse_refuses_a_member_whose_detections_are_another_models(tmp_path, capsys):
    a = _detections(tmp_path / "a.json", "ls", "aaaa0000", 0.5)
    b = _detections(tmp_path / "b.json", "ls", "cccc0000", 0.5)  # listed as bbbb0000 below
    members = tmp_path / "members.json"
    members.write_text(json.dumps({"format": "multirater-members", "kind": "lse", "size": 2, "members": [
        {"detections": a, "strategy": "ls", "config_id": "aaaa0000", "source": "ls"},
        {"detections": b, "strategy": "ls", "config_id": "bbbb0000", "source": "ls"}]}))
    out = tmp_path / "fused.json"
    assert main(["fuse", "--members", str(members), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{b}: meta.identity: holds the detections of ls/cccc0000, but the members file lists it for ls/bbbb0000" in err
    assert not out.exists()
    assert main(["fuse", "--members", str(members), "--out", str(out), a]) == 2
    assert "give no PRED.json or --sources" in capsys.readouterr().err and not out.exists()
