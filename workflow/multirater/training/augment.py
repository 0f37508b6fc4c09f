"""Training-time augmentation, each applied with probability p (0.3 as the paper):
horizontal/vertical flip and rot90 (exact, boxes and masks moved with the pixels), then
brightness/contrast (in random order), Gaussian blur and Gaussian noise (pixels only).

Every random draw comes from the generator passed in, which the training data seeds per sample with
(seed, epoch, image id) (:mod:`multirater.training.samples`): a sample is augmented the same way in
the training process or in any loader worker, and a resumed run draws the same augmentations.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.transforms.v2 import functional as F


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


def adjust_contrast(image: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend an RGB image with its mean grey level (torchvision's formula). The mean is summed by numpy, in one
    thread: the same bits in the training process and in a loader worker, whatever torch's thread count
    (a multi-threaded torch sum splits the pixels differently)."""
    r, g, b = image.unbind(-3)
    grey = r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114)
    mean = float(grey.numpy().mean(dtype=np.float64))
    return image.mul(factor).add_(mean * (1.0 - factor)).clamp_(0.0, 1.0)


class Augment:
    """Random geometric and photometric augmentation of one (image, target) pair."""

    BRIGHTNESS = CONTRAST = 0.25  # factors drawn from [1 - x, 1 + x]
    BLUR_KERNEL, BLUR_SIGMA = 5, (0.1, 1.5)
    NOISE_SIGMA = 0.03

    def __init__(self, p: float = 0.3) -> None:
        self.p = p

    def _draw(self, generator: torch.Generator) -> bool:
        return bool(torch.rand((), generator=generator) < self.p)

    @staticmethod
    def _uniform(generator: torch.Generator, low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand((), generator=generator))

    def _photometric(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self._draw(generator):  # brightness and contrast, in random order
            brightness = self._uniform(generator, 1 - self.BRIGHTNESS, 1 + self.BRIGHTNESS)
            contrast = self._uniform(generator, 1 - self.CONTRAST, 1 + self.CONTRAST)
            ops = [lambda im: F.adjust_brightness(im, brightness), lambda im: adjust_contrast(im, contrast)]
            for index in torch.randperm(2, generator=generator).tolist():
                image = ops[index](image)
        if self._draw(generator):
            sigma = self._uniform(generator, *self.BLUR_SIGMA)
            image = F.gaussian_blur(image, [self.BLUR_KERNEL, self.BLUR_KERNEL], [sigma, sigma])
        if self._draw(generator):
            noise = torch.randn(image.shape, generator=generator, dtype=image.dtype)
            image = (image + noise * self.NOISE_SIGMA).clamp(0.0, 1.0)
        return image

    def __call__(self, image: torch.Tensor, target: dict[str, torch.Tensor],
                 generator: torch.Generator) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self._draw(generator):
            image, target = hflip(image, target)
        if self._draw(generator):
            image, target = vflip(image, target)
        if self._draw(generator):
            for _ in range(int(torch.randint(1, 4, (), generator=generator))):
                image, target = rot90(image, target)
        image = self._photometric(image, generator)
        return image.clamp(0.0, 1.0), target
