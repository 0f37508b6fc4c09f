"""The scene of a synthetic brightfield image: organoids (shape and viability), debris, and pixels.

An organoid's latent viability in [0, 1] shows in its appearance: viable ones are bright, round and
have a smooth dark rim; dying ones are dark, irregular and fragmented, and shed debris.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

N_POLYGON = 32  # vertices of each organoid outline


@dataclass
class Organoid:
    cx: float
    cy: float
    a: float  # semi-axes (px)
    b: float
    angle: float
    viability: float
    harmonics: np.ndarray  # (K, 2) amplitude, phase of the outline's radial wobble

    def radius(self, theta: np.ndarray) -> np.ndarray:
        """Outline radius at angles ``theta``, relative to the ellipse (1 = on the ellipse)."""
        k = np.arange(2, 2 + len(self.harmonics))[:, None]
        amp, phase = self.harmonics[:, 0:1], self.harmonics[:, 1:2]
        return 1.0 + np.sum(amp * np.cos(k * theta[None, :] + phase), axis=0)

    def polygon(self) -> np.ndarray:
        """Outline as (N_POLYGON, 2) x, y points."""
        theta = np.linspace(0.0, 2 * np.pi, N_POLYGON, endpoint=False)
        r = self.radius(theta)
        u, v = self.a * r * np.cos(theta), self.b * r * np.sin(theta)
        ca, sa = math.cos(self.angle), math.sin(self.angle)
        return np.column_stack([self.cx + ca * u - sa * v, self.cy + sa * u + ca * v])


@dataclass
class Debris:
    cx: float
    cy: float
    r: float


def sample_organoids(rng: np.random.Generator, size: int) -> list[Organoid]:
    """6-26 organoids of random size, shape and viability, placed without heavy overlap."""
    n_wanted = int(rng.integers(6, 27))
    scale = size / 256.0
    placed: list[Organoid] = []
    for _ in range(n_wanted):
        # Log-uniform mean radius: many small organoids, a few large (diameters ~10-60 px at 256 px).
        r_mean = float(np.exp(rng.uniform(np.log(5.0), np.log(28.0)))) * min(scale, 1.0)
        viability = float(rng.beta(1.1, 1.1))
        elong = float(rng.uniform(0.75, 1.0))
        a, b = r_mean / math.sqrt(elong), r_mean * math.sqrt(elong)
        irregular = 0.02 + 0.22 * (1.0 - viability) ** 1.5
        harmonics = np.column_stack(
            [rng.uniform(0.3, 1.0, 5) * irregular / np.arange(1, 6) ** 0.5, rng.uniform(0, 2 * np.pi, 5)]
        )
        angle = float(rng.uniform(0, np.pi))
        for _try in range(25):
            cx, cy = rng.uniform(0.4 * r_mean, size - 0.4 * r_mean, 2)
            # Touching is allowed, heavy overlap is not.
            if all(math.hypot(cx - o.cx, cy - o.cy) >= 0.9 * (r_mean + math.sqrt(o.a * o.b)) for o in placed):
                placed.append(Organoid(float(cx), float(cy), a, b, angle, viability, harmonics))
                break
    return placed


def sample_debris(rng: np.random.Generator, size: int) -> list[Debris]:
    """Small dark particles, about 10 per 256 x 256 px; a quarter of them large enough to be mistaken
    for a small organoid."""
    n = int(rng.poisson(10 * (size / 256.0) ** 2))
    radii = np.where(rng.random(n) < 0.25, rng.uniform(3.5, 7.0, n), rng.uniform(1.0, 3.0, n))
    xy = rng.uniform(0, size, (n, 2))
    return [Debris(float(x), float(y), float(r)) for (x, y), r in zip(xy, radii)]


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return field / (field.std() + 1e-9)


def render(rng: np.random.Generator, size: int, organoids: list[Organoid], debris: list[Debris]) -> np.ndarray:
    """A grey brightfield-like image in [0, 1] (float32)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    # Uneven illumination: a tilted plane plus vignetting.
    direction = rng.uniform(0, 2 * np.pi)
    tilt = ((xx - size / 2) * math.cos(direction) + (yy - size / 2) * math.sin(direction)) / size
    vignette = ((xx - size / 2) ** 2 + (yy - size / 2) ** 2) / (size / 2) ** 2
    img = 0.58 + rng.uniform(0.04, 0.12) * tilt - rng.uniform(0.05, 0.12) * vignette
    img += 0.015 * _smooth_noise(rng, (size, size), 6.0)  # out-of-focus background texture

    for org in organoids:
        _paint_organoid(img, rng, org)
    for d in debris:
        _paint_blob(img, rng, d.cx, d.cy, d.r, value=rng.uniform(0.15, 0.35))

    img = ndimage.gaussian_filter(img, rng.uniform(0.6, 1.1))  # optics blur
    img += rng.normal(0.0, 0.025, img.shape)  # sensor noise
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def _paint_organoid(img: np.ndarray, rng: np.random.Generator, org: Organoid) -> None:
    size = img.shape[0]
    reach = max(org.a, org.b) * (1.0 + float(np.abs(org.harmonics[:, 0]).sum())) + 3
    x0, x1 = max(int(org.cx - reach), 0), min(int(org.cx + reach) + 2, size)
    y0, y1 = max(int(org.cy - reach), 0), min(int(org.cy + reach) + 2, size)
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    dx, dy = xx - org.cx, yy - org.cy
    ca, sa = math.cos(org.angle), math.sin(org.angle)
    u, v = (ca * dx + sa * dy) / org.a, (-sa * dx + ca * dy) / org.b
    rho = np.hypot(u, v)
    theta = np.arctan2(v, u)
    boundary = org.radius(theta.ravel()).reshape(theta.shape)
    depth = (boundary - rho) * min(org.a, org.b)  # approx. px inside the outline
    alpha = np.clip(depth + 0.5, 0.0, 1.0)
    if not alpha.any():
        return

    via = org.viability
    shape = depth.shape
    # Interior: viable ones bright and finely textured; dead ones dark and blotchy.
    interior = 0.32 + 0.45 * via + 0.05 * rng.standard_normal(shape)
    fine = ndimage.gaussian_filter(rng.standard_normal(shape), 1.0)
    interior += (0.04 + 0.08 * (1 - via)) * fine / (fine.std() + 1e-9)
    if via < 0.6:  # fragmentation: dark clumps inside
        blotch = ndimage.gaussian_filter(rng.standard_normal(shape), 1.5)
        blotch /= blotch.std() + 1e-9
        interior -= (0.6 - via) * 0.5 * np.clip(blotch, 0, None)
    # Rim: a smooth dark ring for viable organoids, faint for dead ones.
    rim_width = 1.2 + 1.5 * via
    rim = np.exp(-((depth - rim_width / 2) ** 2) / (2 * (rim_width / 2) ** 2))
    value = interior - (0.15 + 0.25 * via) * rim
    patch = img[y0:y1, x0:x1]
    patch[:] = patch * (1 - alpha) + value * alpha
    if via < 0.35:  # shed fragments around dying organoids
        for _ in range(int(rng.integers(1, 5))):
            ang = rng.uniform(0, 2 * np.pi)
            dist = math.sqrt(org.a * org.b) * rng.uniform(1.05, 1.4)
            _paint_blob(img, rng, org.cx + dist * math.cos(ang), org.cy + dist * math.sin(ang),
                        rng.uniform(1.0, 2.2), value=rng.uniform(0.2, 0.35))


def _paint_blob(img: np.ndarray, rng: np.random.Generator, cx: float, cy: float, r: float, value: float) -> None:
    size = img.shape[0]
    x0, x1 = max(int(cx - r - 2), 0), min(int(cx + r + 3), size)
    y0, y1 = max(int(cy - r - 2), 0), min(int(cy + r + 3), size)
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    theta = np.arctan2(yy - cy, xx - cx)
    wobble = 1.0 + 0.3 * np.cos(3 * theta + rng.uniform(0, 2 * np.pi))
    alpha = np.clip(r * wobble - np.hypot(xx - cx, yy - cy) + 0.5, 0.0, 1.0)
    patch = img[y0:y1, x0:x1]
    patch[:] = patch * (1 - alpha) + value * alpha
