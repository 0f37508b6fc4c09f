"""Detector builders (torchvision, never downloading weights), base-checkpoint loading and freezing.

Models: ``tiny`` (a few convolutions at stride 8 in a Faster R-CNN, for demos and tests), Faster R-CNN
with a ResNet-18/34/50 FPN backbone, the Mask R-CNN variants, and ``goat`` (the paper's base: Mask
R-CNN, ResNet-34 FPN, 4 trainable stages, box NMS 0.4, 1000 detections per image).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN, MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops import FrozenBatchNorm2d, MultiScaleRoIAlign

from multirater.core.errors import UserError
from multirater.training.checkpoints import CHECKPOINT_FORMAT, read_checkpoint

# Shown in a mismatch error; more would drown the message.
MAX_LISTED = 8


class TinyBackbone(nn.Sequential):
    """Five 3x3 convolutions, stride 8, one 64-channel feature map: trains in seconds on a CPU."""

    def __init__(self) -> None:
        layers: list[nn.Module] = []
        channels = [3, 16, 32, 32, 64, 64]
        strides = [2, 2, 1, 2, 1]
        for c_in, c_out, s in zip(channels[:-1], channels[1:], strides):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=s, padding=1), nn.GroupNorm(8, c_out), nn.ReLU(inplace=True)]
        super().__init__(*layers)
        self.out_channels = channels[-1]


def _tiny(num_classes: int, common: dict[str, Any]) -> FasterRCNN:
    backbone = TinyBackbone()
    # Anchors for 10-60 px objects at a stride of 8.
    anchors = AnchorGenerator(sizes=((12, 24, 48, 72),), aspect_ratios=((0.5, 1.0, 2.0),))
    roi_pool = MultiScaleRoIAlign(featmap_names=["0"], output_size=7, sampling_ratio=2)
    head = TwoMLPHead(backbone.out_channels * 7 * 7, 256)
    return FasterRCNN(
        backbone,
        num_classes=None,  # given by the predictor
        rpn_anchor_generator=anchors,
        box_roi_pool=roi_pool,
        box_head=head,
        box_predictor=FastRCNNPredictor(256, num_classes),
        rpn_pre_nms_top_n_train=600,
        rpn_post_nms_top_n_train=300,
        rpn_pre_nms_top_n_test=600,
        rpn_post_nms_top_n_test=300,
        rpn_batch_size_per_image=128,
        box_batch_size_per_image=64,
        **common,
    )


def build_model(settings: dict[str, Any], num_classes: int, masks: bool) -> nn.Module:
    """The detector named in the (validated) model settings, with random weights.

    ``num_classes`` counts the background. A Mask R-CNN trained without masks has its mask branch
    removed (it would have nothing to learn); the box branch is unchanged.
    """
    name = settings["name"]
    common = dict(
        min_size=settings["min_size"],
        max_size=settings["max_size"],
        box_score_thresh=settings["score_thresh"],
        box_nms_thresh=settings["nms_thresh"],
        box_detections_per_img=settings["detections_per_img"],
    )
    if name == "tiny":
        return _tiny(num_classes, common)
    depth = {"goat": "resnet34"}.get(name) or name.replace("maskrcnn_", "").replace("_fpn", "")
    # FrozenBatchNorm2d as in torchvision's pretrained detectors (and GOAT): batch statistics of
    # 2-image batches would be noise, and the checkpoint keys stay compatible.
    backbone = resnet_fpn_backbone(
        backbone_name=depth, weights=None, norm_layer=FrozenBatchNorm2d, trainable_layers=settings["trainable_layers"]
    )
    if name == "goat":
        common.update(rpn_batch_size_per_image=128, box_batch_size_per_image=256)
    if name.startswith("maskrcnn_") or name == "goat":
        model = MaskRCNN(backbone, num_classes=num_classes, **common)
        if not masks:
            drop_mask_branch(model)
        return model
    return FasterRCNN(backbone, num_classes=num_classes, **common)


def is_mask_model(name: str) -> bool:
    """True for the Mask R-CNN architectures (goat included)."""
    return name.startswith("maskrcnn_") or name == "goat"


def drop_mask_branch(model: nn.Module) -> None:
    """Turn a Mask R-CNN into its box-only self (torchvision skips masks when the pool is None)."""
    model.roi_heads.mask_roi_pool = None
    model.roi_heads.mask_head = None
    model.roi_heads.mask_predictor = None


def has_mask_branch(model: nn.Module) -> bool:
    """True when the model predicts masks (a Mask R-CNN whose mask branch was kept)."""
    return getattr(model.roi_heads, "mask_roi_pool", None) is not None


def extract_state_dict(obj: Any, path: str | Path) -> dict[str, torch.Tensor]:
    """The model weights in one of the accepted formats: our checkpoint, ``{'model_state_dict': ...}``
    (GOAT's ``.bin``), or a bare torchvision state dict."""
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        state = obj.get("model")
    elif isinstance(obj, dict) and "model_state_dict" in obj:
        state = obj["model_state_dict"]
    else:
        state = obj
    if not isinstance(state, dict) or not state or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise UserError(
            "not a model checkpoint: expected a state dict, a dict with 'model_state_dict', "
            "or a multirater checkpoint",
            path,
        )
    # Weights saved from DataParallel/DistributedDataParallel carry a 'module.' prefix.
    if all(k.startswith("module.") for k in state):
        state = OrderedDict((k[len("module."):], v) for k, v in state.items())
    return state


def load_weights(model: nn.Module, path: str | Path, obj: Any = None) -> None:
    """Load a base checkpoint into ``model``; any key or shape difference is one clear error."""
    state = extract_state_dict(read_checkpoint(path) if obj is None else obj, path)
    own = model.state_dict()
    ignored = lambda k: k.endswith("num_batches_tracked") or (  # noqa: E731
        k.startswith("roi_heads.mask_") and not has_mask_branch(model)
    )
    missing = sorted(k for k in own if k not in state and not ignored(k))
    unexpected = sorted(k for k in state if k not in own and not ignored(k))
    shapes = sorted(
        f"{k} (checkpoint {tuple(state[k].shape)}, model {tuple(own[k].shape)})"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    )
    problems = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
        if items:
            more = f" ... and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else ""
            problems.append(f"{len(items)} {label}: {', '.join(items[:MAX_LISTED])}{more}")
    if problems:
        raise UserError("does not fit this model architecture: " + "; ".join(problems), path)
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)


def apply_freeze(model: nn.Module, mode: str) -> None:
    """Stop gradients to the backbone (as the paper; with the mask head), or backbone and RPN."""
    if mode == "none":
        return
    model.backbone.requires_grad_(False)
    if has_mask_branch(model):
        model.roi_heads.mask_head.requires_grad_(False)
    if mode == "backbone+rpn":
        model.rpn.requires_grad_(False)
