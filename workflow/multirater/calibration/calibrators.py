"""Post-hoc calibrators: maps from a detection's raw score s (and its box) to a calibrated probability p.

With logit(s) = log(s / (1 - s)) of s clipped to [1e-6, 1 - 1e-6] and sigmoid(z) = 1 / (1 + exp(-z)):

- ``logistic`` (Platt scaling): p = sigmoid(a * logit(s) + b);
- ``temperature``: p = sigmoid(a * logit(s)), i.e. temperature T = 1 / a, no shift;
- ``detection-aware``: p = sigmoid(w . [logit(s), cx, cy, w, h] + b), with the box centre and size relative to
  the image's width and height, clipped to [0, 1] (Kueppers et al.'s multivariate logistic calibration, as
  netcal's ``LogisticCalibration(detection=True)``);
- ``isotonic``: p = f(s), f the non-decreasing step fit of pool-adjacent-violators, linear between its
  breakpoints and constant beyond them (scikit-learn's ``out_of_bounds="clip"``), in [0, 1].

Fitting is scikit-learn's, on targets y_d in [0, 1] (hard or soft, see ``targets``):
- the logistic family minimises  -sum_d [y_d log p_d + (1 - y_d) log(1 - p_d)] + ||w||^2 / (2 C)  (lbfgs; the
  intercept is not penalised). A soft target enters as two rows, (x_d, 1) with weight y_d and (x_d, 0) with
  weight 1 - y_d, whose weighted log loss is exactly the term above. C = 1e4 makes the penalty negligible
  unless the data are separable, where it keeps the weights finite;
- isotonic minimises  sum_d (y_d - f(s_d))^2  over non-decreasing f with values in [0, 1].

All the parameters are plain numbers (isotonic: its breakpoints), stored as JSON, never pickled; applying a
calibrator uses only numpy, so the same inputs give bitwise the same scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from multirater.calibration.methods import METHODS, method_spec
from multirater.core.errors import UserError

BOX_FEATURES = ("cx", "cy", "w", "h")
LOGIT_CLIP = 1e-6
L2_C = 1e4
_LBFGS_TOL = 1e-10
_LBFGS_MAX_ITER = 10_000


@dataclass(frozen=True)
class Calibrator:
    """A fitted calibrator. Logistic family: ``coefficients`` (on ``feature_names``) and ``intercept``;
    isotonic: breakpoints ``x`` (raw scores, ascending) and ``y`` (calibrated scores). ``fitted`` records how
    it was fitted (target, IoU, reference, the validation files)."""

    method: str
    coefficients: tuple[float, ...] = ()
    intercept: float = 0.0
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()
    fitted: dict[str, Any] = field(default_factory=dict)

    @property
    def needs_boxes(self) -> bool:
        """Whether applying it needs the relative box features (and so the images' sizes)."""
        return METHODS[self.method].box_features

    @property
    def feature_names(self) -> tuple[str, ...]:
        if METHODS[self.method].isotonic:
            return ("score",)
        return ("logit",) + (BOX_FEATURES if self.needs_boxes else ())

    def predict(self, scores: np.ndarray, box_features: np.ndarray | None = None) -> np.ndarray:
        """Calibrated probabilities of raw ``scores`` (N,); ``box_features`` (N, 4) for detection-aware."""
        scores = np.asarray(scores, dtype=np.float64)
        if METHODS[self.method].isotonic:
            return np.clip(np.interp(scores, np.asarray(self.x), np.asarray(self.y)), 0.0, 1.0)
        design = logistic_features(scores, box_features if self.needs_boxes else None)
        return sigmoid(design @ np.asarray(self.coefficients, dtype=np.float64) + self.intercept)


def logit(scores: np.ndarray) -> np.ndarray:
    """log(s / (1 - s)) of the scores clipped to [LOGIT_CLIP, 1 - LOGIT_CLIP] (finite for 0 and 1)."""
    s = np.clip(np.asarray(scores, dtype=np.float64), LOGIT_CLIP, 1.0 - LOGIT_CLIP)
    return np.log(s) - np.log1p(-s)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)) without overflow for large |z|."""
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def relative_box_features(boxes: np.ndarray, widths: np.ndarray, heights: np.ndarray) -> np.ndarray:
    """(N, 4) columns cx, cy, w, h of xywh ``boxes`` relative to their image's size, clipped to [0, 1]."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    features = np.column_stack([
        (boxes[:, 0] + boxes[:, 2] / 2) / widths,
        (boxes[:, 1] + boxes[:, 3] / 2) / heights,
        boxes[:, 2] / widths,
        boxes[:, 3] / heights,
    ])
    return np.clip(features, 0.0, 1.0)


def logistic_features(scores: np.ndarray, box_features: np.ndarray | None = None) -> np.ndarray:
    """The design matrix of the logistic family: logit(s), then the box features if given."""
    columns = [logit(scores)[:, None]]
    if box_features is not None:
        columns.append(np.asarray(box_features, dtype=np.float64).reshape(len(columns[0]), -1))
    return np.hstack(columns)


def fit_calibrator(method: str, scores: np.ndarray, targets: np.ndarray, box_features: np.ndarray | None = None,
                   name: str = "<validation detections>", fitted: dict[str, Any] | None = None) -> Calibrator:
    """Fit ``method`` to raw ``scores`` and ``targets`` in [0, 1] (one per detection); ``name`` is the data's
    file, named in errors; ``fitted`` is recorded in the calibrator."""
    spec = method_spec(method)
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    _check_data(scores, targets, name)
    fitted = dict(fitted or {})
    if spec.isotonic:
        x, y = _fit_isotonic(scores, targets)
        return Calibrator(method, x=x, y=y, fitted=fitted)
    if spec.box_features and box_features is None:
        raise UserError(f"the {method} method needs the detections' box features", name)
    _check_both_outcomes(targets, name)
    design = logistic_features(scores, box_features if spec.box_features else None)
    coefficients, intercept = fit_logistic(design, targets, fit_intercept=spec.intercept)
    return Calibrator(method, coefficients=coefficients, intercept=intercept, fitted=fitted)


def fit_logistic(design: np.ndarray, targets: np.ndarray,
                 fit_intercept: bool = True) -> tuple[tuple[float, ...], float]:
    """Weights and intercept minimising the weighted log loss of soft ``targets`` plus ||w||^2 / (2 L2_C)."""
    from sklearn.linear_model import LogisticRegression

    n = len(targets)
    rows = np.concatenate([design, design])
    labels = np.concatenate([np.ones(n), np.zeros(n)])
    weights = np.concatenate([targets, 1.0 - targets])
    keep = weights > 0  # a zero-weight row adds nothing to the loss
    model = LogisticRegression(C=L2_C, fit_intercept=fit_intercept, tol=_LBFGS_TOL, max_iter=_LBFGS_MAX_ITER)
    model.fit(rows[keep], labels[keep], sample_weight=weights[keep])
    intercept = float(model.intercept_[0]) if fit_intercept else 0.0
    return tuple(float(w) for w in model.coef_[0]), intercept


def _fit_isotonic(scores: np.ndarray, targets: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    from sklearn.isotonic import IsotonicRegression

    model = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    model.fit(scores, targets)
    return tuple(float(v) for v in model.X_thresholds_), tuple(float(v) for v in model.y_thresholds_)


def _check_data(scores: np.ndarray, targets: np.ndarray, name: str) -> None:
    if scores.shape != targets.shape or scores.ndim != 1:
        raise UserError(f"{len(scores)} scores but {len(targets)} targets", name)
    if len(scores) == 0:
        raise UserError("no detections to fit a calibrator on", name)
    if not (np.all(np.isfinite(scores)) and np.all((scores >= 0) & (scores <= 1))):
        raise UserError("scores must be finite and lie in [0, 1]", name)
    if not (np.all(np.isfinite(targets)) and np.all((targets >= 0) & (targets <= 1))):
        raise UserError("targets must be finite and lie in [0, 1]", name)


def _check_both_outcomes(targets: np.ndarray, name: str) -> None:
    # A logistic fit needs weight on both outcomes, else its optimum lies at infinity.
    if not targets.any():
        raise UserError("no detection matches the reference (every target is 0): nothing to calibrate against",
                        name)
    if np.all(targets == 1):
        raise UserError("every detection matches the reference (every target is 1): nothing to calibrate "
                        "against", name)
