"""The calibrator file: a small JSON object with the fitted numbers, read back strictly.

    {"format": "multirater-calibrator",
     "method": "logistic",                        # logistic | temperature | isotonic | detection-aware
     "features": ["logit"],                       # the coefficients' inputs, in order
     "coefficients": [0.81], "intercept": -0.42,  # logistic family
     "x": [...], "y": [...],                      # isotonic: breakpoints, raw score -> calibrated score
     "logit_clip": 1e-06,
     "fitted": {"target": "soft", "iou": 0.5, "reference": null, "detections": "val.json", ...}}

Floats are written with Python's shortest round-trip repr, so a calibrator read back predicts bitwise the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from multirater.calibration.calibrators import LOGIT_CLIP, Calibrator
from multirater.calibration.methods import METHODS, method_spec
from multirater.core.errors import UserError
from multirater.core.files import read_json, write_json
from multirater.io.coco import is_number

FORMAT = "multirater-calibrator"


def calibrator_to_json(calibrator: Calibrator) -> dict[str, Any]:
    """The JSON object of a calibrator (only the keys its method uses)."""
    data: dict[str, Any] = {"format": FORMAT, "method": calibrator.method, "features": list(calibrator.feature_names)}
    if METHODS[calibrator.method].isotonic:
        data.update(x=list(calibrator.x), y=list(calibrator.y))
    else:
        data.update(coefficients=list(calibrator.coefficients), intercept=calibrator.intercept,
                    logit_clip=LOGIT_CLIP)
    data["fitted"] = calibrator.fitted
    return data


def write_calibrator(path: str | Path, calibrator: Calibrator) -> None:
    """Write the calibrator file atomically."""
    write_json(path, calibrator_to_json(calibrator))


def read_calibrator(path: str | Path) -> Calibrator:
    """Read and validate a calibrator file; every problem names the file and the key."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(f"not a calibrator file (expected \"format\": \"{FORMAT}\")", path)
    method = data.get("method")
    spec = method_spec(method, path)
    fitted = data.get("fitted", {})
    if not isinstance(fitted, dict):
        raise UserError(f"must be an object, got {fitted!r:.60}", path, "fitted")
    if spec.isotonic:
        x, y = _numbers(data, "x", path), _numbers(data, "y", path)
        _check_breakpoints(x, y, path)
        return Calibrator(method, x=x, y=y, fitted=fitted)
    calibrator = Calibrator(method, coefficients=_numbers(data, "coefficients", path),
                            intercept=_number(data, "intercept", path), fitted=fitted)
    if data.get("features") != list(calibrator.feature_names):
        raise UserError(f"must be {list(calibrator.feature_names)} for method {method}, got {data.get('features')!r}",
                        path, "features")
    if len(calibrator.coefficients) != len(calibrator.feature_names):
        raise UserError(f"needs {len(calibrator.feature_names)} numbers (one per feature), got "
                        f"{len(calibrator.coefficients)}", path, "coefficients")
    if data.get("logit_clip") != LOGIT_CLIP:
        raise UserError(f"must be {LOGIT_CLIP} (the clip this version applies), got {data.get('logit_clip')!r}",
                        path, "logit_clip")
    return calibrator


def _number(data: dict[str, Any], key: str, path: Path) -> float:
    value = data.get(key)
    if not is_number(value):
        raise UserError(f"must be a finite number, got {value!r:.60}", path, key)
    return float(value)


def _numbers(data: dict[str, Any], key: str, path: Path) -> tuple[float, ...]:
    values = data.get(key)
    if not isinstance(values, list) or not values or not all(is_number(v) for v in values):
        raise UserError(f"must be a non-empty list of finite numbers, got {values!r:.60}", path, key)
    return tuple(float(v) for v in values)


def _check_breakpoints(x: tuple[float, ...], y: tuple[float, ...], path: Path) -> None:
    if len(x) != len(y):
        raise UserError(f"{len(x)} numbers in 'x' but {len(y)} in 'y'", path, "y")
    if any(b <= a for a, b in zip(x, x[1:])):
        raise UserError("must be strictly increasing", path, "x")
    if any(b < a for a, b in zip(y, y[1:])) or not all(0.0 <= v <= 1.0 for v in y):
        raise UserError("must be non-decreasing and lie in [0, 1]", path, "y")
