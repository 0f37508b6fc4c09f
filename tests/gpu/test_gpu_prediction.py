"""Prediction on a CUDA device: agreement with CPU prediction, and the GPU memory of tiled prediction.

Skipped without CUDA; run them with `make test-gpu` on a machine with a GPU.

Tolerances (CPU detections above score 0.05 are the reference; each needs a GPU detection on the same image):
- full precision (autocast off, TF32 off): at IoU >= 0.99 with a score within 1e-3, for >= 99 % of them;
- as `multirater predict --device cuda` runs (autocast to float16: about 3 significant digits in the
  convolutions and the box head): at IoU >= 0.9 with a score within 0.02, for >= 95 % of them (a near-tie in
  the proposals or NMS may swap a few boxes).
"""

import json

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from multirater.cli import main
from multirater.data.dataset import load_dataset, load_image
from multirater.data.synthetic import generate
from multirater.training.models import build_model
from multirater.training.prediction import detect, detect_large, load_trained_model
from multirater.training.settings import validate_model
from test_training import write_config, write_splits

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (make test-gpu on a GPU machine)"),
]

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
MIN_SCORE = 0.05


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The tiny model trained on the GPU (10 epochs, 20 images of 256 px): confident detections to compare."""
    root = tmp_path_factory.mktemp("gpu_trained")
    manifest = generate(root / "ds", seed=11, images=24, consensus_images=4, raters=1, size=256)
    splits = write_splits(root / "splits.json", list(range(1, 21)), [21, 22, 23, 24], [25, 26, 27, 28])
    config = write_config(root / "c.yaml", {"epochs": 10, "batch_size": 2, "lr": 0.001, "freeze": "none",
                                            "augment": False, "patience": 0}, model={"min_size": 256, "max_size": 256})
    assert main(["train", "--dataset", str(manifest), "--splits", str(splits), "--strategy", "rs-rater1",
                 "--config", str(config), "--out", str(root / "m"), "--device", "cuda"]) == 0
    return root, manifest, splits


def agreement(reference, other, min_iou, max_score_gap):
    """(share of the reference detections above MIN_SCORE that have a detection of ``other`` on the same image at
    IoU >= ``min_iou`` and with a score within ``max_score_gap``, how many were checked). Each argument: per image,
    (boxes xyxy, scores)."""
    agreed = checked = 0
    for (ref_boxes, ref_scores), (boxes, scores) in zip(reference, other):
        confident = ref_scores > MIN_SCORE
        ref_boxes, ref_scores = np.asarray(ref_boxes)[confident], np.asarray(ref_scores)[confident]
        checked += len(ref_scores)
        if not len(ref_scores) or not len(scores):
            continue
        iou = box_iou(torch.as_tensor(ref_boxes, dtype=torch.float64), torch.as_tensor(boxes, dtype=torch.float64))
        close = np.abs(ref_scores[:, None] - np.asarray(scores)[None, :]) <= max_score_gap
        agreed += int(((iou.numpy() >= min_iou) & close).any(axis=1).sum())
    return agreed / max(checked, 1), checked


def as_xyxy(detections, image_ids):
    """Per image of ``image_ids``: (boxes xyxy, scores) of a detections file's JSON."""
    out = []
    for image_id in image_ids:
        mine = [d for d in detections["detections"] if d["image_id"] == image_id]
        xywh = np.asarray([d["bbox"] for d in mine], dtype=np.float64).reshape(-1, 4)
        out.append((np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1),
                    np.asarray([d["score"] for d in mine], dtype=np.float64)))
    return out


def test_full_precision_gpu_prediction_agrees_with_the_cpu(trained):
    root, manifest, splits = trained
    dataset = load_dataset(manifest)
    images = [torch.from_numpy(load_image(dataset.images[i].path).transpose(2, 0, 1).copy()) for i in (25, 26, 27, 28)]
    model_cpu, _ = load_trained_model(root / "m" / "best.pt", CPU)
    model_gpu, _ = load_trained_model(root / "m" / "best.pt", CUDA)
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        on_gpu = detect(model_gpu, images, 4, CUDA, amp=False)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    on_cpu = detect(model_cpu, images, 4, CPU)
    share, checked = agreement([(b, s) for b, s, _ in on_cpu], [(b, s) for b, s, _ in on_gpu], 0.99, 1e-3)
    assert checked >= 20, f"only {checked} detections above {MIN_SCORE}: the model did not learn"
    assert share >= 0.99, f"{share:.3f} of {checked} CPU detections found on the GPU"


def test_gpu_prediction_as_the_workflow_runs_it_agrees_with_the_cpu(trained):
    root, manifest, splits = trained
    for device in ("cpu", "cuda"):
        assert main(["predict", "--model", str(root / "m"), "--dataset", str(manifest), "--splits", str(splits),
                     "--images", "test", "--out", str(root / f"{device}.json"), "--device", device]) == 0
    on_cpu, on_gpu = (json.loads((root / f"{d}.json").read_text()) for d in ("cpu", "cuda"))
    assert on_cpu["image_ids"] == on_gpu["image_ids"] == [25, 26, 27, 28]
    share, checked = agreement(as_xyxy(on_cpu, on_cpu["image_ids"]), as_xyxy(on_gpu, on_gpu["image_ids"]), 0.9, 0.02)
    assert checked >= 20, f"only {checked} detections above {MIN_SCORE}: the model did not learn"
    assert share >= 0.95, f"{share:.3f} of {checked} CPU detections found on the GPU"


def test_tiled_prediction_gpu_memory_does_not_grow_with_the_image():
    """A 2048 px image predicted in 128 px windows needs no more GPU memory than a 256 px one: only a batch of
    windows is ever on the GPU (the whole image in float32 would take 48 MiB there)."""
    settings = validate_model({"name": "tiny", "min_size": 128, "max_size": 128, "tile_size": 128, "tile_overlap": 32})
    torch.manual_seed(0)
    model = build_model(settings, 2, False).to(CUDA).eval()
    generator = torch.Generator().manual_seed(0)
    large, small = torch.rand(3, 2048, 2048, generator=generator), torch.rand(3, 256, 256, generator=generator)

    def peak(image):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        detect_large(model, lambda w: image[:, w[1]:w[3], w[0]:w[2]], image.shape[2], image.shape[1], settings, 4,
                     CUDA, amp=True)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated()

    peak(small)  # warm-up: cuDNN's workspaces, the caching allocator
    small_peak, large_peak = peak(small), peak(large)
    whole_image = large.numel() * 4
    assert large_peak - small_peak < whole_image / 6, (
        f"peak GPU memory {large_peak / 2**20:.1f} MiB for 2048 px vs {small_peak / 2**20:.1f} MiB for 256 px")
