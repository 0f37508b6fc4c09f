"""Synthetic multi-rater organoid data: brightfield-like images and simulated raters.

Every organoid has a latent viability in [0, 1] that shows in its appearance (viable: bright, round,
smooth dark rim; non-viable: dark, irregular, fragmented). A simulated "pretrained detector" proposes
boxes; each rater keeps the proposals they agree with (provenance ``pretrained``), adds the organoids it
missed (``manual``), and has their own viability threshold, perception noise, miss rate, spurious boxes,
box jitter and box tightness. Consensus labels (test images) are a joint decision: the middle
threshold, tight boxes, nothing missed.

Everything is drawn from ``numpy.random.default_rng([seed, image_index, ...])``, so a dataset is a pure
function of its arguments and the first images stay the same when more are asked for.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from multirater.core.errors import UserError
from multirater.core.files import write_json, write_yaml

CATEGORIES = [{"id": 1, "name": "organoid"}]
N_POLYGON = 32  # vertices of each organoid outline
MIN_SIZE_PX = 64


@dataclass(frozen=True)
class RaterStyle:
    """How one annotator decides and draws."""

    threshold: float  # keeps organoids whose perceived viability is at least this
    perception_sd: float  # noise on the viability the rater perceives
    miss_rate: float  # chance of overlooking a kept organoid the detector did not propose
    spurious: float  # mean number of boxes per image on debris (not organoids)
    jitter: float  # sd of each box edge, as a fraction of the object's size
    tightness: float  # margin each side of the object, as a fraction of its size (0 = tight)
    redraw: float  # chance of redrawing a kept proposal in the rater's own style


# Rater 1 is liberal (low threshold, keeps and adds more); rater 2 is strict. Together they give about
# 1.5x as many objects for rater 1 and a mean F1@IoU0.5 near 0.63, as in the paper's Figure 2.
LIBERAL = RaterStyle(threshold=0.19, perception_sd=0.3, miss_rate=0.2, spurious=1.0,
                     jitter=0.1, tightness=0.06, redraw=0.3)
STRICT = RaterStyle(threshold=0.45, perception_sd=0.3, miss_rate=0.3, spurious=0.6,
                    jitter=0.1, tightness=0.0, redraw=0.5)
CONSENSUS_STYLE = RaterStyle(threshold=0.32, perception_sd=0.03, miss_rate=0.0, spurious=0.0,
                             jitter=0.015, tightness=0.0, redraw=1.0)


@dataclass(frozen=True)
class DetectorStyle:
    """The simulated pretrained detector that pre-annotates every image."""

    base_recall: float = 0.35  # recall on a dead organoid ...
    viability_recall: float = 0.5  # ... plus this much times viability
    false_positives: float = 1.0  # mean proposals per image on debris
    jitter: float = 0.06
    tightness: float = 0.04


def rater_styles(n_raters: int) -> list[RaterStyle]:
    """Styles for ``n_raters`` raters, from the liberal to the strict one (interpolated between)."""
    if n_raters == 1:
        return [LIBERAL]
    styles = []
    for t in np.linspace(0.0, 1.0, n_raters):
        fields = {
            name: float((1 - t) * getattr(LIBERAL, name) + t * getattr(STRICT, name))
            for name in LIBERAL.__dataclass_fields__
        }
        styles.append(RaterStyle(**fields))
    return styles


def rater_names(n_raters: int) -> list[str]:
    return [f"rater{i + 1}" for i in range(n_raters)]


# ----------------------------------------------------------------------------- scene


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


def _sample_organoids(rng: np.random.Generator, size: int) -> list[Organoid]:
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


def _sample_debris(rng: np.random.Generator, size: int) -> list[Debris]:
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


# ----------------------------------------------------------------------------- annotators


def _tight_box(poly: np.ndarray, size: int) -> np.ndarray:
    """xyxy of the outline clipped to the image."""
    p = np.clip(poly, 0, size)
    return np.array([p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()])


def _draw_box(rng: np.random.Generator, tight: np.ndarray, jitter: float, margin: float, size: int) -> np.ndarray | None:
    """An annotator's xyxy box around a tight box: a margin each side plus per-edge noise."""
    w, h = tight[2] - tight[0], tight[3] - tight[1]
    scale = np.array([w, h, w, h])
    sign = np.array([-1.0, -1.0, 1.0, 1.0])
    box = tight + sign * margin * scale + rng.normal(0.0, jitter, 4) * scale
    box = np.clip(box, 0, size)
    if box[2] - box[0] < 2 or box[3] - box[1] < 2:
        return None
    return box


@dataclass
class _Object:
    """Something an annotator may box: an organoid (with viability) or a debris particle."""

    tight: np.ndarray  # xyxy
    polygon: np.ndarray  # outline (x, y)
    viability: float | None  # None for debris


def _annotate(
    rng: np.random.Generator,
    objects: list[_Object],
    proposals: dict[int, np.ndarray],
    debris_objects: list[_Object],
    style: RaterStyle,
    size: int,
) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """One rater's correction of the detector's proposals: (xyxy box, polygon, provenance) per object."""
    out = []
    for i, obj in enumerate(objects):
        perceived = obj.viability + rng.normal(0.0, style.perception_sd)
        proposed = proposals.get(i)
        # Decide the rater's draws up front so every rater consumes the same random stream.
        miss, redraw = rng.random(), rng.random()
        if perceived < style.threshold:
            continue
        if proposed is not None:
            box = _draw_box(rng, obj.tight, style.jitter, style.tightness, size) if redraw < style.redraw else proposed
            source = "pretrained"
        else:
            if miss < style.miss_rate:
                continue
            box = _draw_box(rng, obj.tight, style.jitter, style.tightness, size)
            source = "manual"
        if box is not None:
            out.append((box, obj.polygon, source))
    # Spurious boxes: debris that the rater takes for a small organoid.
    n_spurious = min(int(rng.poisson(style.spurious)), len(debris_objects))
    for j in rng.choice(len(debris_objects), n_spurious, replace=False) if n_spurious else []:
        d = debris_objects[int(j)]
        box = _draw_box(rng, d.tight, style.jitter, style.tightness + 0.15, size)
        if box is not None:
            out.append((box, d.polygon, "manual"))
    return out


def _circle_polygon(cx: float, cy: float, r: float) -> np.ndarray:
    theta = np.linspace(0.0, 2 * np.pi, 12, endpoint=False)
    return np.column_stack([cx + r * np.cos(theta), cy + r * np.sin(theta)])


# ----------------------------------------------------------------------------- dataset


@dataclass
class SyntheticImage:
    image: np.ndarray  # (H, W) float32
    annotations: dict[str, list[tuple[np.ndarray, np.ndarray, str]]]  # source -> (xyxy, polygon, provenance)
    organoids: list[tuple[np.ndarray, float]]  # (outline polygon, viability) of every organoid


def synthesize_image(
    seed: int, index: int, size: int, styles: dict[str, RaterStyle], detector: DetectorStyle = DetectorStyle()
) -> SyntheticImage:
    """One image and the annotations of every style in ``styles`` (pure function of its arguments)."""
    scene_rng = np.random.default_rng([seed, index, 0])
    organoids = _sample_organoids(scene_rng, size)
    debris = _sample_debris(scene_rng, size)
    image = render(scene_rng, size, organoids, debris)

    objects = []
    for org in organoids:
        poly = org.polygon()
        objects.append(_Object(_tight_box(poly, size), np.clip(poly, 0, size), org.viability))
    objects = [o for o in objects if (o.tight[2] - o.tight[0]) >= 3 and (o.tight[3] - o.tight[1]) >= 3]
    debris_objects = [
        _Object(_tight_box(p, size), np.clip(p, 0, size), None)
        for p in (_circle_polygon(d.cx, d.cy, d.r * 1.3) for d in debris if d.r >= 3.5)
    ]
    debris_objects = [o for o in debris_objects if (o.tight[2] - o.tight[0]) >= 3 and (o.tight[3] - o.tight[1]) >= 3]

    det_rng = np.random.default_rng([seed, index, 1])
    proposals: dict[int, np.ndarray] = {}
    for i, obj in enumerate(objects):
        hit = det_rng.random() < detector.base_recall + detector.viability_recall * obj.viability
        box = _draw_box(det_rng, obj.tight, detector.jitter, detector.tightness, size)
        if hit and box is not None:
            proposals[i] = box

    annotations = {}
    for k, (name, style) in enumerate(styles.items()):
        rng = np.random.default_rng([seed, index, 2 + k])
        annotations[name] = _annotate(rng, objects, proposals, debris_objects, style, size)
    return SyntheticImage(image, annotations, [(o.polygon, float(o.viability)) for o in objects])


def _polygon_area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def _coco(images: list[dict], anns: list[tuple[int, np.ndarray, np.ndarray, str]]) -> dict:
    annotations = []
    for k, (image_id, box, poly, source) in enumerate(anns, start=1):
        x0, y0, x1, y1 = (round(float(v), 2) for v in box)
        annotations.append({
            "id": k,
            "image_id": image_id,
            "category_id": 1,
            "bbox": [x0, y0, round(x1 - x0, 2), round(y1 - y0, 2)],
            "area": round(_polygon_area(poly), 2),
            "iscrowd": 0,
            "segmentation": [[round(float(v), 2) for v in poly.ravel()]],
            "attributes": {"source": source},
        })
    return {"images": images, "annotations": annotations, "categories": [dict(c) for c in CATEGORIES]}


def generate(
    out: str | Path,
    seed: int = 0,
    images: int = 80,
    consensus_images: int = 20,
    raters: int = 2,
    size: int = 256,
) -> Path:
    """Write a synthetic multi-rater dataset into ``out``; return the manifest path.

    Multi-rater images get ids 1..images, consensus images the ids after them.
    Written into a temporary folder first, so a failure leaves nothing behind.
    """
    _check_args(images, consensus_images, raters, size)
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / "dataset.yaml").exists():
        raise UserError("folder exists and is not empty (and holds no dataset.yaml); choose another --out", out)
    names = rater_names(raters)
    styles = dict(zip(names, rater_styles(raters)))
    from PIL import Image

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (tmp / "images").mkdir()
        rater_images, consensus_imgs = [], []
        rater_anns: dict[str, list] = {n: [] for n in names}
        consensus_anns: list = []
        for index in range(images + consensus_images):
            image_id = index + 1
            is_consensus = index >= images
            sample = synthesize_image(seed, index, size, {"consensus": CONSENSUS_STYLE} if is_consensus else styles)
            file_name = f"img_{image_id:04d}.png"
            pixels = np.round(sample.image * 255).astype(np.uint8)
            Image.fromarray(pixels, mode="L").save(tmp / "images" / file_name)
            record = {"id": image_id, "file_name": file_name, "width": size, "height": size}
            if is_consensus:
                consensus_imgs.append(record)
                consensus_anns += [(image_id, *a) for a in sample.annotations["consensus"]]
            else:
                rater_images.append(record)
                for name in names:
                    rater_anns[name] += [(image_id, *a) for a in sample.annotations[name]]
        for name in names:
            write_json(tmp / f"{name}.json", _coco(rater_images, rater_anns[name]), indent=None)
        manifest = {
            "name": f"synthetic-organoids-seed{seed}",
            "images": "images",
            "raters": {name: f"{name}.json" for name in names},
        }
        if consensus_images:
            write_json(tmp / "consensus.json", _coco(consensus_imgs, consensus_anns), indent=None)
            manifest["consensus"] = "consensus.json"
        write_yaml(tmp / "dataset.yaml", manifest)
        _move_into(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out / "dataset.yaml"


def _check_args(images: int, consensus_images: int, raters: int, size: int) -> None:
    if images < 2:
        raise UserError(f"need at least 2 multi-rater images (train and validation), got {images}", None, "--images")
    if consensus_images < 0:
        raise UserError(f"must be 0 or more, got {consensus_images}", None, "--consensus-images")
    if raters < 1:
        raise UserError(f"need at least 1 rater, got {raters}", None, "--raters")
    if size < MIN_SIZE_PX:
        raise UserError(f"images must be at least {MIN_SIZE_PX} px, got {size}", None, "--size")


def _move_into(tmp: Path, out: Path) -> None:
    """Replace ``out`` by the finished folder ``tmp`` (a previous synthetic dataset is overwritten)."""
    if not out.exists():
        os.replace(tmp, out)
        return
    for stale in ("images", "dataset.yaml", "consensus.json", *(p.name for p in out.glob("rater*.json"))):
        target = out / stale
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    # dataset.yaml last, so a reader never finds a manifest before its files
    for item in sorted(tmp.iterdir(), key=lambda p: p.name == "dataset.yaml"):
        os.replace(item, out / item.name)
    tmp.rmdir()
