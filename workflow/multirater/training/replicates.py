"""Training replicates: a configuration trained again with other seeds (``training.replicates``).

Replicate 0 of a configuration is the model the sweep trains; its model id is the configuration id, and its
training configuration file is untouched. Replicate r >= 1 has:

- its own model id: 8 hex characters of the SHA-1 of the canonical JSON ``{"config_id": ID, "replicate": r}``,
  so it depends on the configuration id and r only and never changes when ``training.replicates`` grows;
- its own training seed: the first 32-bit word of numpy's ``SeedSequence([seed, int(ID, 16), r])``, ``seed``
  being replicate 0's ``training.seed`` (the configuration's own seed with ``training.seed_per_config``); so
  its image order, label draws, augmentation, crops and initial weights differ from every other replicate's;
- the same hyperparameters and base model as replicate 0.

Only the selected configurations are trained again (``multirater pool`` lists them; the workflow trains their
replicates after the selection): replicates widen the pool the two-level bootstrap draws members from
(multirater.evaluation.member_bootstrap) and never enter the selection, whose ranks stay one run per
configuration. Importable without torch (the Snakefile calls it at parse time).
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import numpy as np

from multirater.core.errors import UserError
from multirater.training.sweep import training_config


def replicates(config: dict[str, Any]) -> int:
    """``training.replicates`` of a checked workflow config (1 when absent)."""
    return int((config.get("training") or {}).get("replicates", 1))


def replicate_id(config_id: str, replicate: int) -> str:
    """The model id of replicate ``replicate`` of configuration ``config_id`` (the configuration id for 0)."""
    if replicate == 0:
        return config_id
    canonical = json.dumps({"config_id": config_id, "replicate": int(replicate)}, sort_keys=True,
                           separators=(",", ":"))
    return hashlib.sha1(canonical.encode("utf-8")).hexdigest()[:8]


def replicate_seed(seed: int, config_id: str, replicate: int) -> int:
    """The training seed of replicate ``replicate`` >= 1 (``seed``: replicate 0's training seed)."""
    state = np.random.SeedSequence([int(seed), int(config_id, 16), int(replicate)]).generate_state(1, np.uint32)
    return int(state[0])


def replicate_config(job: dict[str, Any], replicate: int) -> dict[str, Any]:
    """The training configuration file of replicate ``replicate`` >= 1, from replicate 0's (``job``)."""
    config_id = job["config_id"]
    out = copy.deepcopy(job)
    out["config_id"] = replicate_id(config_id, replicate)
    out["training"]["seed"] = replicate_seed(job["training"]["seed"], config_id, replicate)
    return out


def replicate_ids(config_ids: list[str], n_replicates: int, file: Any = "config") -> dict[str, tuple[str, int]]:
    """Every replicate r >= 1 of every configuration: model id -> (configuration id, r). An id that equals a
    configuration's or another replicate's is an error (never seen: 32 bits of SHA-1 each)."""
    out: dict[str, tuple[str, int]] = {}
    known = set(config_ids)
    for cid in config_ids:
        for r in range(1, n_replicates):
            rid = replicate_id(cid, r)
            if rid in known or rid in out:
                raise UserError(f"replicate {r} of {cid} gets the model id {rid}, which another model has; "
                                "change training.replicates", file, "training.replicates")
            out[rid] = (cid, r)
    return out


def replicate_jobs(config: dict[str, Any], configs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Model id -> training configuration file of every replicate r >= 1 of every configuration of a checked
    workflow config (none with ``training.replicates`` 1)."""
    return {replicate_id(c["config_id"], r): replicate_config(training_config(config, c), r)
            for c in configs for r in range(1, replicates(config))}
