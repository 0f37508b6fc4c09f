"""Training on a CUDA device: mixed-precision steps of the tiny model, and resuming after a stop.

Skipped without CUDA; run them with `make test-gpu` on a machine with a GPU.
"""

import os
import signal

import pytest
import torch

from multirater.data.dataset import load_dataset
from multirater.training.commands import parse_strategy
from multirater.training.inputs import read_splits
from multirater.training.job import prepare_job
from multirater.training.loop import run_training, train_one_epoch
from multirater.training.models import build_model
from multirater.training.progress import Progress
from multirater.training.settings import read_training_config
from multirater.training.signals import EXIT_PREEMPTED
from test_training import small, weights, write_config  # noqa: F401  (small: the CPU tests' dataset fixture)

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (make test-gpu on a GPU machine)"),
]

CUDA = torch.device("cuda")


def gpu_job(small, tmp_path, training):
    root, manifest, splits = small
    config = read_training_config(write_config(tmp_path / "c.yaml", training))
    dataset = load_dataset(manifest)
    job, _ = prepare_job(dataset, read_splits(splits, dataset), parse_strategy("ls", dataset.rater_names), config,
                         tmp_path / "m", CUDA)
    return job


def test_amp_training_steps_are_finite_half_precision_and_change_the_weights(small, tmp_path):
    # batch 1: 6 steps, so that the grad scaler's first steps, which it may skip on overflow, are not all
    job = gpu_job(small, tmp_path, {"epochs": 1, "batch_size": 1, "freeze": "none", "augment": True, "amp": True})
    assert job.amp and job.scaler.is_enabled()
    before = {k: v.detach().clone() for k, v in job.model.state_dict().items()}
    # What the convolutions compute in: float16 under autocast (an independent witness that AMP is on).
    dtypes = set()
    first_conv = next(m for m in job.model.backbone.modules() if isinstance(m, torch.nn.Conv2d))
    hook = first_conv.register_forward_hook(lambda module, args, out: dtypes.add(out.dtype))
    progress = Progress()
    try:
        train_one_epoch(job, progress)
    finally:
        hook.remove()
    assert dtypes == {torch.float16}
    assert progress.step == job.steps_per_epoch == 6
    assert torch.isfinite(torch.tensor(progress.sums["loss"])) and progress.sums["loss"] > 0
    after = job.model.state_dict()
    assert all(after[k].dtype == before[k].dtype for k in before)  # the weights stay float32
    changed = [k for k in before if before[k].is_floating_point() and not torch.equal(before[k], after[k])]
    assert any(k.startswith("backbone.") for k in changed) and any(k.startswith("roi_heads.") for k in changed)


def test_training_stopped_mid_epoch_and_resumed_on_the_gpu_matches_an_uninterrupted_run(small, tmp_path):
    """As the CPU test (tests/test_training.py) does, with a real SIGTERM after step 2 of epoch 1.

    On a GPU the atomics in roi_align's backward make even two uninterrupted runs differ in the last bits, so
    the runs are compared with a tolerance: the resumed run's distance from the uninterrupted one must be below
    5 % of how far training moved the weights (a resume that lost its place, its RNG state, its optimizer or
    its label choices lands about as far away as the training moved them).
    """
    root, manifest, splits = small
    config_path = write_config(tmp_path / "c.yaml", {"epochs": 2, "batch_size": 2, "augment": True, "augment_p": 0.5,
                                                     "freeze": "none", "patience": 0})
    dataset = load_dataset(manifest)
    config = read_training_config(config_path)
    strategy = parse_strategy("ls", dataset.rater_names)
    split_ids = read_splits(splits, dataset)

    def sigterm_at(epoch, step):
        if (epoch, step) == (0, 2):  # mid-epoch: 3 steps per epoch
            os.kill(os.getpid(), signal.SIGTERM)

    assert run_training(dataset, split_ids, strategy, config, tmp_path / "straight", CUDA) == 0
    assert run_training(dataset, split_ids, strategy, config, tmp_path / "resumed", CUDA,
                        after_step=sigterm_at) == EXIT_PREEMPTED
    assert not (tmp_path / "resumed" / "status.json").exists()
    assert torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)["progress"]["step"] == 2
    assert run_training(dataset, split_ids, strategy, config, tmp_path / "resumed", CUDA) == 0

    torch.manual_seed(config["training"]["seed"])  # the initial weights, as prepare_job builds them
    initial = build_model(config["model"], 2, False).state_dict()
    straight, resumed = weights(tmp_path / "straight" / "last.pt"), weights(tmp_path / "resumed" / "last.pt")
    keys = [k for k in straight if straight[k].is_floating_point()]
    flat = lambda state: torch.cat([state[k].double().flatten() for k in keys])  # noqa: E731
    moved = (flat(straight) - flat(initial)).norm()
    apart = (flat(resumed) - flat(straight)).norm()
    assert moved > 0 and apart < 0.05 * moved, f"resumed {apart:.3g} from the straight run; training moved {moved:.3g}"
    steps = [torch.load(tmp_path / n / "last.pt", weights_only=True)["progress"] for n in ("straight", "resumed")]
    assert steps[0]["epoch"] == steps[1]["epoch"] == 2 and steps[0]["done"] and steps[1]["done"]


def test_loader_workers_deliver_pinned_batches_and_the_same_first_loss_on_the_gpu(small, tmp_path):
    """With two loader workers on CUDA: batches come in pinned memory (asynchronous copies), on the device after
    to_device, and the first step's loss is the one of batches made in the training process (only the first:
    roi_align's backward uses atomics on a GPU, so later steps differ in the last bits even between two runs
    with the same workers; the tests on the CPU compare every step bitwise, tests/test_samples.py)."""
    from multirater.training.labels import epoch_order
    from multirater.training.samples import to_device

    firsts = {}
    for workers in (0, 2):
        root, manifest, splits = small
        config = read_training_config(write_config(tmp_path / f"c{workers}.yaml", {
            "epochs": 1, "batch_size": 2, "freeze": "none", "augment": True, "augment_p": 0.5, "amp": True}))
        dataset = load_dataset(manifest)
        job, _ = prepare_job(dataset, read_splits(splits, dataset), parse_strategy("ls", dataset.rater_names),
                             config, tmp_path / f"m{workers}", CUDA, loader_workers=workers)
        job.batches.set_epoch(0, epoch_order(job.settings["seed"], 0, job.train_ids))
        images, targets = next(iter(job.loader))
        assert all(im.is_pinned() for im in images) and all(t["boxes"].is_pinned() for t in targets)
        on_device, _ = to_device((images, targets), CUDA)
        assert all(im.device.type == "cuda" for im in on_device)
        progress, losses = Progress(), []
        train_one_epoch(job, progress, after_step=lambda epoch, step: losses.append(progress.sums["loss"]))
        firsts[workers] = losses[0]
        assert len(losses) == job.steps_per_epoch and all(torch.isfinite(torch.tensor(losses)))
    # the same batch through the same weights (a different crop, label draw or augmentation moves it by far more)
    assert firsts[0] == pytest.approx(firsts[2], rel=1e-6)
