"""Training-time augmentation, each applied with probability p (0.3 as the paper):
horizontal/vertical flip and rot90 (exact, boxes and masks moved with the pixels), then
brightness/contrast, Gaussian blur and Gaussian noise (torchvision.transforms.v2, pixels only).

All random draws come from torch's global generator, which the training loop seeds per epoch and
saves in its checkpoints, so a resumed run draws the same augmentations.
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2


def hflip(image: torch.Tensor, target: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Mirror left-right, boxes and masks with the pixels."""
    width = image.shape[-1]
    boxes = target["boxes"][:, [2, 1, 0, 3]] * torch.tensor([-1.0, 1.0, -1.0, 1.0]) + torch.tensor([width, 0.0, width, 0.0])
    out = {**target, "boxes": boxes}
    if "masks" in target:
        out["masks"] = target["masks"].flip(-1)
    return image.flip(-1), out


def vflip(image: torch.Tensor, target: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Mirror top-bottom, boxes and masks with the pixels."""
    height = image.shape[-2]
    boxes = target["boxes"][:, [0, 3, 2, 1]] * torch.tensor([1.0, -1.0, 1.0, -1.0]) + torch.tensor([0.0, height, 0.0, height])
    out = {**target, "boxes": boxes}
    if "masks" in target:
        out["masks"] = target["masks"].flip(-2)
    return image.flip(-2), out


def rot90(image: torch.Tensor, target: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Rotate a quarter turn counter-clockwise: pixel (x, y) goes to (y, W - x)."""
    width = image.shape[-1]
    x1, y1, x2, y2 = target["boxes"].unbind(-1)
    boxes = torch.stack([y1, width - x2, y2, width - x1], dim=-1)
    out = {**target, "boxes": boxes}
    if "masks" in target:
        out["masks"] = target["masks"].rot90(1, dims=(-2, -1))
    return image.rot90(1, dims=(-2, -1)), out


class Augment:
    """Random geometric and photometric augmentation of one (image, target) pair."""

    def __init__(self, p: float = 0.3) -> None:
        self.p = p
        self.photometric = [
            v2.ColorJitter(brightness=0.25, contrast=0.25),
            v2.GaussianBlur(kernel_size=5, sigma=(0.1, 1.5)),
            v2.GaussianNoise(sigma=0.03, clip=True),
        ]

    def _draw(self) -> bool:
        return bool(torch.rand(()) < self.p)

    def __call__(self, image: torch.Tensor, target: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self._draw():
            image, target = hflip(image, target)
        if self._draw():
            image, target = vflip(image, target)
        if self._draw():
            for _ in range(int(torch.randint(1, 4, ()))):
                image, target = rot90(image, target)
        for transform in self.photometric:
            if self._draw():
                image = transform(image)
        return image.clamp(0.0, 1.0), target
