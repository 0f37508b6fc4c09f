"""The two-level bootstrap (members and test images) of LSE_S and RSE_S, against hand-made detections whose
D-ECE is known in closed form.

Every image holds one ground-truth box, and every model one detection per image, exactly on that box, with
its own score s[m, i]. Fused (complete linkage, score_norm ensemble) every member's box joins one group: the
fused box is the ground-truth box (IoU 1: matched at every threshold) and its score the members' mean. Every
gap (matched - confidence) is then 1 - mean score >= 0, so whatever the bins, the D-ECE of a resample that
draws image i c[i] times, with members A, is

    sum_i c[i] * (1 - mean_{m in A} s[m, i]) / sum_i c[i].

The image resamples and member draws are re-made here from their documented recipes
(multirater.evaluation.bootstrap, multirater.evaluation.member_draws).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from multirater.cli import main
from multirater.core.errors import UserError
from multirater.core.fusion import fuse
from multirater.evaluation.evaluate import evaluate
from multirater.evaluation.member_bootstrap import member_bootstrap
from multirater.evaluation.tables import lse_vs_rse
from multirater.io.detections import Detections, write_detections
from multirater.selection.members import build_members
from multirater.selection.pool import build_pool, ensemble_sources
from multirater.selection.ranking import rank_models

N_IMAGES, BOOTSTRAP, DRAWS, SEED = 6, 40, 5, 3
GT_BOX = [10.0, 10.0, 30.0, 30.0]
STRATEGIES = {"ls": 4, "rs-r1": 2, "rs-r2": 2}  # selected models per strategy


def ground_truth() -> dict:
    images = [{"id": i, "file_name": f"{i}.png", "width": 100, "height": 100} for i in range(1, N_IMAGES + 1)]
    anns = [{"id": i, "image_id": i, "category_id": 1, "bbox": GT_BOX, "area": 900.0, "iscrowd": 0}
            for i in range(1, N_IMAGES + 1)]
    return {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "organoid"}]}


def model(scores: np.ndarray, strategy: str, model_id: str) -> Detections:
    ids = np.arange(1, N_IMAGES + 1)
    return Detections(image_ids=ids, image_id=ids, category_id=np.ones(N_IMAGES, dtype=np.int64),
                      boxes=np.tile(GT_BOX, (N_IMAGES, 1)), scores=np.asarray(scores, dtype=np.float64),
                      meta={"identity": {"strategy": strategy, "config_id": model_id}})


def selection_rows(replicates: int = 1) -> list[dict]:
    statuses = [{"strategy": s, "config_id": f"{k:04x}{j:04x}", "status": "ok", "best_val_map": 0.9 - 0.1 * k}
                for j, (s, n) in enumerate(STRATEGIES.items()) for k in range(n)]
    return rank_models(statuses, top_ls=STRATEGIES["ls"], top_rs=STRATEGIES["rs-r1"])


def pool_with_scores(scores: dict[str, np.ndarray], replicates: int = 1) -> tuple[dict, dict]:
    """The pool document and its models' detections; ``scores[strategy]`` is (configs, replicates, images)."""
    pool = build_pool(selection_rows(), replicates, "preds")
    detections = {}
    for m in pool["models"]:
        k = m["rank"] - 1
        for r, rep in enumerate(m["replicates"]):
            detections[rep["detections"]] = model(scores[m["strategy"]][k, r], m["strategy"], rep["model_id"])
    return pool, detections


def loader(detections: dict):
    return lambda path, strategy, model_id: detections[path]


def image_counts() -> np.ndarray:
    """The documented image resamples: rng.integers(0, I, (B, I)), counted per image."""
    idx = np.random.default_rng(SEED).integers(0, N_IMAGES, size=(BOOTSTRAP, N_IMAGES))
    return np.stack([np.bincount(row, minlength=N_IMAGES) for row in idx]).astype(float)


def documented_draws(kind: str, size: int, pool: dict, n_draws: int = DRAWS) -> list[list[tuple[str, int, int]]]:
    """The documented member draws: per source, sorted rng.choice(K, take, replace=False), then per taken
    configuration rng.integers(replicates)."""
    rng = np.random.default_rng([0x4D454D, SEED, size, {"lse": 0, "rse": 1}[kind]])
    strategies = ["ls"] if kind == "lse" else ["rs-r1", "rs-r2"]
    take = size if kind == "lse" else size // 2
    draws = []
    for _ in range(n_draws):
        members = []
        for s in strategies:
            configs = [m for m in pool["models"] if m["strategy"] == s]
            for k in sorted(rng.choice(len(configs), size=take, replace=False).tolist()):
                members.append((s, k, int(rng.integers(len(configs[k]["replicates"])))))
        draws.append(members)
    return draws


def closed_form(scores: dict, kind: str, size: int, pool: dict, n_draws: int = DRAWS,
                target: float = 1.0) -> np.ndarray:
    """The two-level D-ECE of every resample (module docstring), from the documented draws; with ``target`` < 1
    the D-ECE-soft of detections whose target is ``target`` (every score below it: every gap positive)."""
    counts = image_counts()
    draws = documented_draws(kind, size, pool, n_draws)
    b = np.arange(BOOTSTRAP)
    which = b % n_draws if kind == "lse" else (b // n_draws) % n_draws
    out = np.empty(BOOTSTRAP)
    for row in b:
        fused = np.mean([scores[s][k, r] for s, k, r in draws[which[row]]], axis=0)  # (images,)
        out[row] = np.sum(counts[row] * (target - fused)) / counts[row].sum()
    return out


def run(pool: dict, detections: dict, size: int = 2, n_draws: int = DRAWS, **soft: list) -> dict:
    return member_bootstrap(ground_truth(), pool, size, loader(detections), bootstrap=BOOTSTRAP, seed=SEED,
                            member_draws=n_draws, gt_name="gt.json", **soft)


def values(result: dict, kind: str, iou: float = 0.5, metric: str = "D-ECE") -> np.ndarray:
    record = next(r for r in result["ensembles"] if r["kind"] == kind)
    entry = next(m for m in record["metrics"] if m["metric"] == metric and m["iou"] == iou)
    return np.array(entry["values"], dtype=float)


def image_only(pool: dict, detections: dict, kind: str, size: int = 2, **soft: list) -> dict:
    """The image-only bootstrap of the ensemble itself (its members file's models, fused)."""
    members = build_members(selection_rows(), kind, size, "preds")["members"]
    fused = fuse([detections[m["detections"]] for m in members], sources=[m["source"] for m in members])
    fused.meta["identity"] = {"kind": kind, "size": size, "members": []}
    return evaluate(ground_truth(), fused, bootstrap=BOOTSTRAP, seed=SEED, gt_name="gt.json", **soft)


def disagreeing_scores(rng: np.random.Generator, replicates: int = 1) -> dict[str, np.ndarray]:
    """Scores that differ between images (spread 0.1) and, far more, between models (offsets up to +-0.25)."""
    base = rng.uniform(0.45, 0.55, N_IMAGES)
    return {s: np.clip(base + rng.uniform(-0.25, 0.25, (n, replicates, 1)), 0.05, 0.95)
            for s, n in STRATEGIES.items()}


def test_identical_members_give_the_image_bootstrap_exactly():
    """All models alike: every member set fuses to the same detections, so each resample's two-level value is
    the image-only bootstrap's, bit for bit, and the table's two intervals are the same numbers."""
    base = np.random.default_rng(0).uniform(0.2, 0.8, N_IMAGES)
    scores = {s: np.tile(base, (n, 1, 1)) for s, n in STRATEGIES.items()}
    pool, detections = pool_with_scores(scores)
    result = run(pool, detections)
    for kind in ("lse", "rse"):
        record = next(r for r in result["ensembles"] if r["kind"] == kind)
        assert record["varies"] and record["warning"] is None and record["fused_sets"] >= 2
        reference = image_only(pool, detections, kind)
        for entry in record["metrics"]:
            image = next(m for m in reference["metrics"] if (m["metric"], m["iou"]) == (entry["metric"], entry["iou"]))
            assert entry["values"] == image["values"], (kind, entry["metric"], entry["iou"])
        # and both equal the closed form
        np.testing.assert_allclose(values(result, kind), closed_form(scores, kind, 2, pool), rtol=1e-12)

    ensembles = {(k, 2): image_only(pool, detections, k) for k in ("lse", "rse")}
    table = lse_vs_rse(ensembles, {2: ("m.json", result)})
    assert (table["interval"] == "members+images").all()
    for low, high in (("diff_p2.5", "diff_p97.5"),):
        assert table[low].tolist() == table[f"{low}_images"].tolist()
        assert table[high].tolist() == table[f"{high}_images"].tolist()
    assert table["p_value"].tolist() == table["p_value_images"].tolist()


def test_disagreeing_members_widen_the_interval():
    """Members whose scores differ: the two-level values are the closed form of the documented draws, and the
    interval of LSE - RSE is wider than the image-only one, which holds the members fixed."""
    scores = disagreeing_scores(np.random.default_rng(1))
    pool, detections = pool_with_scores(scores)
    result = run(pool, detections)
    for kind in ("lse", "rse"):
        for iou in (0.5, 0.75):
            np.testing.assert_allclose(values(result, kind, iou), closed_form(scores, kind, 2, pool), rtol=1e-12)

    # two draws: few enough member sets that each is fused on its own (no shared pool); the same values
    np.testing.assert_allclose(values(run(pool, detections, n_draws=2), "lse"),
                               closed_form(scores, "lse", 2, pool, n_draws=2), rtol=1e-12)

    ensembles = {(k, 2): image_only(pool, detections, k) for k in ("lse", "rse")}
    table = lse_vs_rse(ensembles, {2: ("m.json", result)})
    row = table[(table.metric == "D-ECE") & (table.iou == 0.5)].iloc[0]
    assert row["interval"] == "members+images" and (row["warning"] is None or row["warning"] != row["warning"])
    difference = closed_form(scores, "lse", 2, pool) - closed_form(scores, "rse", 2, pool)
    assert row["diff_p2.5"] == pytest.approx(np.percentile(difference, 2.5), rel=1e-9)
    assert row["diff_p97.5"] == pytest.approx(np.percentile(difference, 97.5), rel=1e-9)
    two_level = row["diff_p97.5"] - row["diff_p2.5"]
    images = row["diff_p97.5_images"] - row["diff_p2.5_images"]
    assert two_level > 2 * images > 0
    assert bool(row["significant"]) == bool(row["diff_p2.5"] > 0 or row["diff_p97.5"] < 0)


def test_dece_soft_gets_two_level_values_too():
    """With D-ECE-soft's label sets (the ground truth and a rater who labelled nothing: every fused box's target
    is 1/2, and every score lies below it) the member bootstrap's D-ECE-soft is the closed form with target 1/2,
    D-ECE's stays the same, and lse_vs_rse.csv's D-ECE-soft row gets the two-level interval."""
    rng = np.random.default_rng(2)
    base = rng.uniform(0.15, 0.25, N_IMAGES)
    scores = {s: base + rng.uniform(-0.1, 0.1, (n, 1, 1)) for s, n in STRATEGIES.items()}  # all in (0.05, 0.35)
    pool, detections = pool_with_scores(scores)
    nobody = {**ground_truth(), "annotations": []}
    soft = {"soft_gt": [ground_truth(), nobody], "soft_gt_names": ["r1.json", "r2.json"]}
    result = run(pool, detections, **soft)
    assert result["settings"]["soft_gt"] == ["r1.json", "r2.json"]
    for kind in ("lse", "rse"):
        for iou in (0.5, 0.75):
            np.testing.assert_allclose(values(result, kind, iou, "D-ECE-soft"),
                                       closed_form(scores, kind, 2, pool, target=0.5), rtol=1e-12)
            np.testing.assert_allclose(values(result, kind, iou), closed_form(scores, kind, 2, pool), rtol=1e-12)
    ensembles = {(k, 2): image_only(pool, detections, k, **soft) for k in ("lse", "rse")}
    table = lse_vs_rse(ensembles, {2: ("m.json", result)})
    row = table[(table.metric == "D-ECE-soft") & (table.iou == 0.5)].iloc[0]
    difference = closed_form(scores, "lse", 2, pool, target=0.5) - closed_form(scores, "rse", 2, pool, target=0.5)
    assert row["interval"] == "members+images"
    assert row["diff_p2.5"] == pytest.approx(np.percentile(difference, 2.5), rel=1e-9)
    # a member file without D-ECE-soft (no soft label sets): that row keeps the image-only interval and says why
    plain = lse_vs_rse(ensembles, {2: ("m.json", run(pool, detections))})
    row = plain[(plain.metric == "D-ECE-soft") & (plain.iou == 0.5)].iloc[0]
    assert row["interval"] == "images" and "no two-level values of D-ECE-soft" in row["warning"]


def test_a_pool_too_small_for_the_size_warns_and_gives_the_image_interval():
    """LSE_4 from 4 LS models and RSE_4 from 2 per rater, each trained once: no other member set exists. The
    file says so, the table's interval is the image-only one, labelled, with the warning, and never
    significant."""
    scores = disagreeing_scores(np.random.default_rng(2))
    pool, detections = pool_with_scores(scores)
    result = run(pool, detections, size=4)
    for record in result["ensembles"]:
        assert not record["varies"] and record["metrics"] == [] and record["fused_sets"] == 0
        assert "no other member set can be drawn" in record["warning"]
    assert "takes all 4 selected ls models" in result["ensembles"][0]["warning"]
    ensembles = {(k, 4): image_only(pool, detections, k, 4) for k in ("lse", "rse")}
    table = lse_vs_rse(ensembles, {4: ("m.json", result)})
    assert (table["interval"] == "images").all() and not table["significant"].any()
    assert table["warning"].str.contains("LSE_4 takes all 4 selected ls models").all()
    assert table["diff_p2.5"].tolist() == table["diff_p2.5_images"].tolist()
    # no member bootstrap at all: the same, with its own warning
    alone = lse_vs_rse(ensembles)
    assert (alone["interval"] == "images").all() and alone["warning"].str.contains("no member bootstrap").all()


def test_replicates_let_a_pool_of_the_ensembles_size_vary():
    """LSE_4 takes all 4 LS configurations, but each was trained twice: draws pick replicates, and the values
    are the closed form of the documented draws."""
    scores = disagreeing_scores(np.random.default_rng(3), replicates=2)
    pool, detections = pool_with_scores(scores, replicates=2)
    result = run(pool, detections, size=4)
    lse = next(r for r in result["ensembles"] if r["kind"] == "lse")
    assert lse["varies"] and lse["warning"] is None
    replicate_ids = {m["replicates"][1]["model_id"] for m in pool["models"]}
    assert any(set(d) & replicate_ids for d in lse["draws"])
    for kind in ("lse", "rse"):
        np.testing.assert_allclose(values(result, kind), closed_form(scores, kind, 4, pool), rtol=1e-12)


def test_the_pool_lists_the_ensembles_members_first_in_their_order():
    """The base draw (top S per source, replicate 0) is exactly the members file's list, in its order."""
    rows = selection_rows()
    pool = build_pool(rows, 3, "preds")
    for kind, size in (("lse", 2), ("lse", 4), ("rse", 2), ("rse", 4)):
        sources = ensemble_sources(pool, kind, size)
        base = [src.detections[k][0] for src in sources for k in range(src.take)]
        assert base == [m["detections"] for m in build_members(rows, kind, size, "preds")["members"]]
    assert [len(m["replicates"]) for m in pool["models"]] == [3] * 8
    assert pool["models"][0]["replicates"][0]["model_id"] == pool["models"][0]["config_id"]


def test_the_command_writes_the_file_and_warns_in_its_log(tmp_path, capsys):
    scores = disagreeing_scores(np.random.default_rng(4))
    pool, detections = pool_with_scores(scores)
    for m in pool["models"]:
        for rep in m["replicates"]:
            rep["detections"] = str(tmp_path / rep["detections"])
            write_detections(rep["detections"], detections[rep["detections"][len(str(tmp_path)) + 1:]])
    (tmp_path / "pool.json").write_text(json.dumps(pool))
    (tmp_path / "gt.json").write_text(json.dumps(ground_truth()))
    args = ["member-bootstrap", "--gt", str(tmp_path / "gt.json"), "--pool", str(tmp_path / "pool.json"),
            "--bootstrap", str(BOOTSTRAP), "--seed", str(SEED), "--member-draws", str(DRAWS)]
    assert main([*args, "--size", "4", "--out", str(tmp_path / "4.json")]) == 0
    assert "warning: LSE_4 takes all 4 selected ls models" in capsys.readouterr().err
    assert main([*args, "--size", "2", "--out", str(tmp_path / "2.json")]) == 0
    written = json.loads((tmp_path / "2.json").read_text())
    np.testing.assert_allclose(values(written, "rse"), closed_form(scores, "rse", 2, pool), rtol=1e-12)

    # one draw has no spread; a model's file holding another model's detections is refused
    assert main([*args, "--size", "2", "--out", str(tmp_path / "x.json"), "--member-draws", "1"]) != 0
    assert "--member-draws: must be 0 (off) or at least 2" in capsys.readouterr().err
    first = pool["models"][0]["replicates"][0]["detections"]
    write_detections(first, model(scores["ls"][0, 0], "ls", "ffffffff"))
    assert main([*args, "--size", "2", "--out", str(tmp_path / "y.json")]) != 0
    assert "holds the detections of ls/ffffffff" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists() and not (tmp_path / "y.json").exists()


def test_a_malformed_pool_is_one_error_naming_it(tmp_path):
    from multirater.selection.pool import read_pool

    path = tmp_path / "pool.json"
    path.write_text(json.dumps({"format": "multirater-pool", "strategies": ["ls"],
                                "models": [{"strategy": "ls", "config_id": "a", "source": "ls", "replicates": []}]}))
    with pytest.raises(UserError) as err:
        read_pool(path)
    assert str(err.value) == f"{path}: models[0].replicates: must list at least one replicate"


def test_a_member_file_that_is_malformed_or_not_paired_is_refused(tmp_path):
    from multirater.evaluation.two_level import member_files_by_size

    scores = disagreeing_scores(np.random.default_rng(5))
    pool, detections = pool_with_scores(scores)
    result = run(pool, detections)
    ensembles = {(k, 2): image_only(pool, detections, k) for k in ("lse", "rse")}
    path = tmp_path / "m.json"
    del result["ensembles"][1]["varies"]
    path.write_text(json.dumps(result))
    with pytest.raises(UserError) as err:
        member_files_by_size([path])
    assert str(err.value) == f"{path}: ensembles[1]: needs 'varies' (true/false) and 'metrics' (a list)"
    result["ensembles"][1]["varies"] = True
    result["settings"]["seed"] = SEED + 1
    path.write_text(json.dumps(result))
    with pytest.raises(UserError) as err:
        lse_vs_rse(ensembles, member_files_by_size([path]))
    assert str(err.value) == (f"{path}: image resamples are not paired: settings.seed is 4 here but 3 in the "
                              "metrics file of LSE 2")
