"""The pool file: every selected model, with its training replicates, that an ensemble's members are drawn
from in the two-level bootstrap (multirater.evaluation.member_bootstrap).

``multirater pool`` writes it from selection.csv, ``multirater member-bootstrap`` reads it. One JSON object::

    {"format": "multirater-pool", "replicates": N, "strategies": ["ls", "rs-<rater>", ...],
     "models": [{"strategy": "ls"|"rs-<rater>", "config_id": ID, "source": "ls"|<rater>, "rank": 1,
                 "replicates": [{"model_id": ID, "detections": PATH}, ...]}, ...]}

``models`` holds each strategy's selected models in rank order (strategies as ``strategy_order``), so that
the top S of a strategy, replicate 0 each, are exactly the members ``multirater members`` lists for LSE_S
and RSE_S, in the same order. Replicate 0 of a configuration is the model the sweep trained (its model id
is the configuration id); replicate r >= 1 is the same configuration trained again with another seed
(``training.replicates``; ids from :func:`multirater.training.replicates.replicate_id`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multirater.core.errors import UserError
from multirater.core.files import read_format_json, write_json
from multirater.selection.members import detections_path
from multirater.selection.ranking import strategy_order
from multirater.training.replicates import replicate_id

FORMAT = "multirater-pool"


def build_pool(rows: list[dict[str, Any]], replicates: int, predictions: str | Path) -> dict[str, Any]:
    """The pool document of the selection ``rows``: every selected model with ``replicates`` model ids
    each (replicate 0 first), detections under ``predictions`` (``<strategy>/<model_id>.json``)."""
    if isinstance(replicates, bool) or not isinstance(replicates, int) or replicates < 1:
        raise UserError(f"must be an integer >= 1, got {replicates!r}", None, "replicates")
    strategies = sorted({r["strategy"] for r in rows}, key=strategy_order)
    models = []
    for strategy in strategies:
        chosen = sorted((r for r in rows if r["strategy"] == strategy and r["selected"]), key=lambda r: r["rank"])
        for row in chosen:
            ids = [replicate_id(row["config_id"], k) for k in range(replicates)]
            models.append({
                "strategy": strategy, "config_id": row["config_id"],
                "source": "ls" if strategy == "ls" else strategy[len("rs-"):], "rank": row["rank"],
                "replicates": [{"model_id": i, "detections": detections_path(predictions, strategy, i)}
                               for i in ids],
            })
    return {"format": FORMAT, "replicates": replicates, "strategies": strategies, "models": models}


def write_pool(path: str | Path, document: dict[str, Any]) -> None:
    write_json(path, document)


def read_pool(path: str | Path) -> dict[str, Any]:
    """A pool file, checked: its format, the strategies, and every model's keys and replicates."""
    data = read_format_json(path, FORMAT, "pool file")
    strategies = data.get("strategies")
    if not isinstance(strategies, list) or not all(isinstance(s, str) and s for s in strategies):
        raise UserError(f"must be a list of strategy names, got {strategies!r}", path, "strategies")
    models = data.get("models")
    if not isinstance(models, list):
        raise UserError(f"must be a list, got {models!r}", path, "models")
    for i, model in enumerate(models):
        if not isinstance(model, dict):
            raise UserError("must be an object", path, f"models[{i}]")
        for key in ("strategy", "config_id", "source"):
            if not isinstance(model.get(key), str) or not model[key]:
                raise UserError(f"missing or not a string: {model.get(key)!r}", path, f"models[{i}].{key}")
        if model["strategy"] not in strategies:
            raise UserError(f"{model['strategy']!r} is not one of the strategies {strategies}", path,
                            f"models[{i}].strategy")
        reps = model.get("replicates")
        if not isinstance(reps, list) or not reps:
            raise UserError("must list at least one replicate", path, f"models[{i}].replicates")
        for k, rep in enumerate(reps):
            if not isinstance(rep, dict) or not all(isinstance(rep.get(key), str) and rep[key]
                                                    for key in ("model_id", "detections")):
                raise UserError("needs 'model_id' and 'detections' (strings)", path, f"models[{i}].replicates[{k}]")
    return data


def pool_files(path: str | Path) -> list[str]:
    """Every detections file a pool file names (every replicate of every model), in its order."""
    return [rep["detections"] for model in read_pool(path)["models"] for rep in model["replicates"]]


def replicate_models(path: str | Path) -> list[tuple[str, str]]:
    """(strategy, model id) of every replicate r >= 1 a pool file names."""
    return [(model["strategy"], rep["model_id"]) for model in read_pool(path)["models"]
            for rep in model["replicates"][1:]]


@dataclass(frozen=True)
class PoolSource:
    """What one source (the label-sampling models, or one rater's) gives an ensemble: ``take`` members
    drawn from ``configs``, its selected configurations in rank order, each as its model ids (replicate 0
    first) and their detections files."""

    strategy: str
    source: str
    configs: tuple[tuple[str, ...], ...]
    detections: tuple[tuple[str, ...], ...]
    take: int

    @property
    def varies(self) -> bool:
        """Whether a draw can hold other members than the top ``take``: more configurations than it takes,
        or more than one replicate of one it takes."""
        return len(self.configs) > self.take or any(len(c) > 1 for c in self.configs[: self.take])


def ensemble_sources(document: dict[str, Any], kind: str, size: int,
                     where: str | Path | None = None) -> list[PoolSource]:
    """The sources of LSE_size (``kind='lse'``: the ``ls`` models, size of them) or RSE_size (``rse``: size/R
    of each of the R raters' models), as ``multirater members`` builds them; too few models is an error."""
    if kind == "lse":
        strategies = ["ls"]
    elif kind == "rse":
        strategies = [s for s in document["strategies"] if s.startswith("rs-")]
        if not strategies:
            raise UserError("no rater-specific models in the pool", where, "rse")
        if size % len(strategies):
            raise UserError(f"size {size} is not divisible by the number of raters ({len(strategies)})", where, "size")
    else:
        raise UserError(f"kind must be lse or rse, got {kind!r}", where, "kind")
    take = size if kind == "lse" else size // len(strategies)
    sources = []
    for strategy in strategies:
        models = [m for m in document["models"] if m["strategy"] == strategy]
        if len(models) < take:
            raise UserError(f"{kind.upper()}_{size} needs {take} selected {strategy} models but the pool holds "
                            f"{len(models)}", where, "models")
        sources.append(PoolSource(
            strategy=strategy, source="ls" if strategy == "ls" else strategy[len("rs-"):],
            configs=tuple(tuple(r["model_id"] for r in m["replicates"]) for m in models),
            detections=tuple(tuple(r["detections"] for r in m["replicates"]) for m in models), take=take))
    return sources
