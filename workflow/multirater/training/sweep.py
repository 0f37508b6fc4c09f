"""The hyperparameter space: a grid or pre-sampled random configurations, each with a stable id.

Importable without torch: the Snakefile calls :func:`expand_sweep` at parse time to learn the ids.
An id is 8 hex characters of the SHA-1 of the configuration's own values (canonical JSON, sorted
keys), so adding configurations or changing anything else in the config never changes an existing id.
Random configuration ``i`` is drawn from its own generator seeded with ``(seed, i)``: the first n stay
identical when n grows. With ``training.seed_per_config``, each configuration's file gets its own
training seed, derived from ``training.seed`` and its id (:func:`configuration_seed`).

The sweep's values are checked here, once, against the schema's training settings; the rest of the
config was checked by whoever read it (the workflow at parse time, :func:`write_sweep`), so
:func:`training_config` and :func:`pretrain_config` only complete.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from multirater.core.errors import UserError
from multirater.training.settings import check, job_config, setting_names

DISTRIBUTIONS = ("loguniform", "uniform", "choice", "randint")
# Random floats are rounded to this many significant digits: readable tables, exact round trips.
SIGNIFICANT_DIGITS = 4


def config_id(values: dict[str, Any]) -> str:
    """8 hex characters of the SHA-1 of the canonical JSON of ``values``."""
    canonical = json.dumps(values, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha1(canonical.encode("utf-8")).hexdigest()[:8]


def _round(x: float) -> float:
    return float(f"{x:.{SIGNIFICANT_DIGITS}g}")


def _check_key(key: str, where: str, file: Any) -> None:
    known = setting_names("training")
    if key not in known:
        raise UserError(f"unknown training key {key!r}; known: {sorted(known)}", file, where)


def _grid(grid: Any, file: Any) -> list[dict[str, Any]]:
    if not isinstance(grid, dict) or not grid:
        raise UserError("must be a non-empty mapping of key -> list of values", file, "sweep.grid")
    keys = sorted(grid)
    for k in keys:
        _check_key(k, f"sweep.grid.{k}", file)
        if not isinstance(grid[k], list) or not grid[k]:
            raise UserError(f"must be a non-empty list, got {grid[k]!r}", file, f"sweep.grid.{k}")
        for value in grid[k]:  # each value once, not once per combination
            check({k: value}, "training", file, "sweep.grid")
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def _draw(rng: np.random.Generator, spec: Any, where: str, file: Any) -> Any:
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
        raise UserError(f"must be one of {{{', '.join(d + ': ...' for d in DISTRIBUTIONS)}}}, got {spec!r}", file, where)
    kind, args = next(iter(spec.items()))
    if kind == "choice":
        if not isinstance(args, list) or not args:
            raise UserError(f"choice needs a non-empty list, got {args!r}", file, where)
        return args[int(rng.integers(len(args)))]
    ok = isinstance(args, list) and len(args) == 2 and all(
        isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a) for a in args
    )
    if not ok or args[0] > args[1]:
        raise UserError(f"{kind} needs [low, high] with low <= high, got {args!r}", file, where)
    low, high = args
    if kind == "randint":
        if not all(isinstance(a, int) for a in args):
            raise UserError(f"randint needs integer bounds, got {args!r}", file, where)
        return int(rng.integers(low, high + 1))  # both ends included
    if kind == "loguniform":
        if low <= 0:
            raise UserError(f"loguniform needs low > 0, got {args!r}", file, where)
        return _round(math.exp(rng.uniform(math.log(low), math.log(high))))
    return _round(rng.uniform(low, high))


def _random(spec: Any, file: Any) -> list[dict[str, Any]]:
    if not isinstance(spec, dict) or set(spec) - {"n", "seed", "space"} or "space" not in spec or "n" not in spec:
        raise UserError("must be {n: N, seed: S, space: {key: distribution}}", file, "sweep.random")
    n, seed, space = spec["n"], spec.get("seed", 0), spec["space"]
    for name, v in (("n", n), ("seed", seed)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise UserError(f"must be an integer >= 0, got {v!r}", file, f"sweep.random.{name}")
    if not isinstance(space, dict) or not space:
        raise UserError("must be a non-empty mapping of key -> distribution", file, "sweep.random.space")
    keys = sorted(space)
    for k in keys:
        _check_key(k, f"sweep.random.space.{k}", file)
    configs = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        values = {k: _draw(rng, space[k], f"sweep.random.space.{k}", file) for k in keys}
        check(values, "training", file, "sweep.random.space")
        configs.append(values)
    return configs


def expand_sweep(config: dict[str, Any], file: Any = None) -> list[dict[str, Any]]:
    """The configurations of ``config['sweep']``: dicts of hyperparameters plus ``config_id``.

    No ``sweep`` section gives one configuration: the training defaults (its id hashes ``{}``).
    Duplicate configurations (possible when random draws repeat) are kept once, first occurrence.
    The sweep's values are checked against the training settings; the ``training`` section they
    override is not (the caller checked the config it read).
    """
    sweep = (config or {}).get("sweep")
    if sweep is None:
        values_list: list[dict[str, Any]] = [{}]
    else:
        if not isinstance(sweep, dict) or len(set(sweep) & {"grid", "random"}) != 1 or set(sweep) - {"grid", "random"}:
            raise UserError("must have exactly one of 'grid' or 'random'", file, "sweep")
        values_list = _grid(sweep["grid"], file) if "grid" in sweep else _random(sweep["random"], file)
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for values in values_list:
        cid = config_id(values)
        if cid not in seen:
            seen.add(cid)
            out.append({"config_id": cid, **values})
    return out


def configuration_seed(seed: int, cid: str) -> int:
    """The seed of configuration ``cid`` when ``training.seed_per_config`` is on: the first 32-bit
    word of numpy's ``SeedSequence([seed, int(cid, 16)])``, ``seed`` being the configuration's
    ``training.seed``. Configurations differ in image order, label sampling, augmentation, crops and
    initial weights; the same configuration always gets the same seed."""
    return int(np.random.SeedSequence([seed, int(cid, 16)]).generate_state(1, np.uint32)[0])


def training_config(config: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """The training configuration file of one sweep entry of a checked config: the model section,
    the training section overridden by the entry's values, and its id. With ``seed_per_config``,
    ``training.seed`` is the configuration's own seed (:func:`configuration_seed`); the file keeps
    ``seed_per_config: true`` as a record, and the job uses ``training.seed`` as it is."""
    values = {k: v for k, v in entry.items() if k != "config_id"}
    job = job_config(config.get("model"), {**(config.get("training") or {}), **values}, entry["config_id"])
    if job["training"]["seed_per_config"]:
        job["training"]["seed"] = configuration_seed(job["training"]["seed"], entry["config_id"])
    return job


def pretrain_config(config: dict[str, Any]) -> dict[str, Any]:
    """The configuration file of the ``pretrain`` job of a checked config: the training section with
    ``freeze: none``, overridden by ``pretrain``; the model starts from random weights. Its seed is
    ``training.seed`` (or ``pretrain.seed``) as it is: there is one pretrain job."""
    training = {**(config.get("training") or {}), "freeze": "none", **(config.get("pretrain") or {})}
    return job_config({**(config.get("model") or {}), "base_checkpoint": None}, training, "pretrain")


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def configs_tsv(entries: list[dict[str, Any]]) -> str:
    """``config_id`` then one column per hyperparameter (sorted), tab-separated."""
    keys = sorted({k for e in entries for k in e if k != "config_id"})
    lines = ["\t".join(["config_id", *keys])]
    for e in entries:
        lines.append("\t".join([e["config_id"], *(_cell(e.get(k)) for k in keys)]))
    return "\n".join(lines) + "\n"


def write_sweep(config_path: str | Path, out: str | Path, config_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Expand the sweep of a workflow config into ``out`` (TSV) and, optionally, one YAML per id
    plus ``pretrain.yaml`` in ``config_dir``. The config is checked once, against the workflow schema."""
    from multirater.config import SCHEMA_PATH
    from multirater.config.schema import validate
    from multirater.core.files import read_yaml, write_text, write_yaml

    config = validate(read_yaml(config_path), SCHEMA_PATH, str(config_path))
    entries = expand_sweep(config, config_path)
    files = {}
    if config_dir is not None:
        files = {e["config_id"]: training_config(config, e) for e in entries}
        files["pretrain"] = pretrain_config(config)
        for cid, data in files.items():
            write_yaml(Path(config_dir) / f"{cid}.yaml", data)
    write_text(out, configs_tsv(entries))
    return entries
