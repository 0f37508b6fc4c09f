"""Detector builders, base-checkpoint formats and their errors, freezing."""

import pytest
import torch

from multirater.core.errors import UserError
from multirater.training.models import apply_freeze, build_model, has_mask_branch, load_weights
from multirater.training.checkpoints import save_checkpoint
from multirater.training.settings import validate_model

torch.set_num_threads(1)


def settings(**kw):
    return validate_model({"name": "tiny", "min_size": 128, "max_size": 160, **kw})


def fresh(seed, **kw):
    torch.manual_seed(seed)
    return build_model(settings(**kw), num_classes=2, masks=False)


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_tiny_model_settings_come_from_the_config():
    model = fresh(0, score_thresh=0.01, detections_per_img=77)
    assert model.transform.min_size == (128,) and model.transform.max_size == 160
    assert model.roi_heads.score_thresh == 0.01 and model.roi_heads.detections_per_img == 77
    model.eval()
    with torch.no_grad():
        out = model([torch.rand(3, 128, 128)])
    assert out[0]["boxes"].shape[1] == 4


def test_goat_is_the_papers_architecture_and_loads_a_model_state_dict_bin(tmp_path):
    s = validate_model({"name": "goat", "min_size": 128, "max_size": 128})
    assert s["nms_thresh"] == 0.4 and s["detections_per_img"] == 1000 and s["trainable_layers"] == 4
    torch.manual_seed(1)
    source = build_model(s, num_classes=2, masks=True)
    assert has_mask_branch(source)
    assert source.roi_heads.nms_thresh == 0.4 and source.roi_heads.detections_per_img == 1000
    assert source.roi_heads.fg_bg_sampler.batch_size_per_image == 256
    assert source.rpn.fg_bg_sampler.batch_size_per_image == 128
    # trainable_layers=4: the stem is frozen, layer1..layer4 train
    assert not source.backbone.body.conv1.weight.requires_grad
    assert source.backbone.body.layer1[0].conv1.weight.requires_grad
    torch.save({"model_state_dict": source.state_dict(), "optimizer_state_dict": {}, "epoch": 3}, tmp_path / "goat.bin")
    torch.manual_seed(2)
    target = build_model(s, num_classes=2, masks=True)
    assert not same_weights(source, target)
    load_weights(target, tmp_path / "goat.bin")
    assert same_weights(source, target)
    # without masks in the data the mask branch is dropped and its weights are skipped
    boxes_only = build_model(s, num_classes=2, masks=False)
    load_weights(boxes_only, tmp_path / "goat.bin")
    assert not has_mask_branch(boxes_only)
    assert torch.equal(boxes_only.roi_heads.box_predictor.cls_score.weight, source.roi_heads.box_predictor.cls_score.weight)


@pytest.mark.parametrize("fmt", ["state_dict", "model_state_dict", "ours", "dataparallel"])
def test_every_checkpoint_format_loads(tmp_path, fmt):
    source, target = fresh(1), fresh(2)
    assert not same_weights(source, target)
    path = tmp_path / "base.pt"
    if fmt == "state_dict":
        torch.save(source.state_dict(), path)
    elif fmt == "model_state_dict":
        torch.save({"model_state_dict": source.state_dict()}, path)
    elif fmt == "dataparallel":
        torch.save({f"module.{k}": v for k, v in source.state_dict().items()}, path)
    else:
        save_checkpoint(path, {"model": source.state_dict(), "meta": {}})
    load_weights(target, path)
    assert same_weights(source, target)


def test_mismatched_checkpoint_fails_clearly_listing_what_differs(tmp_path):
    torch.manual_seed(0)
    three_classes = build_model(settings(), num_classes=3, masks=False)
    torch.save(three_classes.state_dict(), tmp_path / "three.pt")
    with pytest.raises(UserError) as err:
        load_weights(fresh(0), tmp_path / "three.pt")
    msg = str(err.value)
    assert str(tmp_path / "three.pt") in msg
    assert "roi_heads.box_predictor.cls_score.weight (checkpoint (3, 256), model (2, 256))" in msg

    resnet = build_model(validate_model({"name": "resnet18_fpn", "min_size": 128, "max_size": 128}), 2, False)
    torch.save({"model_state_dict": resnet.state_dict()}, tmp_path / "resnet.bin")
    with pytest.raises(UserError) as err:
        load_weights(fresh(0), tmp_path / "resnet.bin")
    msg = str(err.value)
    assert "missing keys" in msg and "unexpected keys" in msg and "backbone.body.layer1" in msg


@pytest.mark.parametrize("content, problem", [
    (b"not a checkpoint at all", "cannot read checkpoint"),
    (None, "checkpoint file not found"),
])
def test_unreadable_checkpoint_is_a_user_error(tmp_path, content, problem):
    path = tmp_path / "bad.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=problem):
        load_weights(fresh(0), path)


def test_truncated_checkpoint_is_a_user_error(tmp_path):
    torch.save(fresh(0).state_dict(), tmp_path / "full.pt")
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="cannot read checkpoint"):
        load_weights(fresh(0), tmp_path / "cut.pt")


@pytest.mark.parametrize("mode, frozen, trainable", [
    ("none", [], ["backbone", "rpn", "roi_heads"]),
    ("backbone", ["backbone"], ["rpn", "roi_heads"]),
    ("backbone+rpn", ["backbone", "rpn"], ["roi_heads"]),
])
def test_freeze_modes(mode, frozen, trainable):
    model = fresh(0)
    apply_freeze(model, mode)
    for name in frozen:
        assert not any(p.requires_grad for p in getattr(model, name).parameters())
    for name in trainable:
        assert all(p.requires_grad for p in getattr(model, name).parameters())


def test_resnet_fpn_models_build_without_downloading():
    for name in ("resnet18_fpn", "maskrcnn_resnet18_fpn"):
        model = build_model(validate_model({"name": name, "min_size": 64, "max_size": 64}), 2, masks=True)
        assert model.transform.min_size == (64,)
        assert has_mask_branch(model) == name.startswith("maskrcnn")
        # FrozenBatchNorm: small batches cannot wreck the statistics
        assert type(model.backbone.body.bn1).__name__ == "FrozenBatchNorm2d"
