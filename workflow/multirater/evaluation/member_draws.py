"""The member level of the two-level bootstrap: which models each resample's ensembles are fused from.

A draw of LSE_S or RSE_S takes, from each of its sources (the label-sampling models; each rater's
rater-specific models; :func:`multirater.selection.pool.ensemble_sources`), ``take`` of the source's K selected
configurations, uniformly without replacement and kept in rank order, and for each taken configuration one of
its replicates, uniformly. Without replacement, so that every draw is an ensemble of ``take`` distinct
configurations, as the ensemble itself is (a configuration drawn twice would be one model counted twice: a
smaller ensemble, whose calibration differs for that reason alone).

``evaluation.member_draws`` (M) draws are made per ensemble, from ``numpy.random.default_rng([MEMBER_STREAM,
seed, size, kind])`` (kind 0 = lse, 1 = rse), and the B bootstrap resamples cycle through them, crossed:
resample b fuses the LSE of draw ``b mod M`` and the RSE of draw ``(b div M) mod M``, so with B = M * M every
LSE draw meets every RSE draw once, each pair on its own resample of the test images. The LSE and RSE draw
their members independently: they share no model.
"""

from __future__ import annotations

import numpy as np

from multirater.selection.pool import PoolSource

# Tells the member draws' random stream apart from the image resamples', which use the same evaluation seed.
MEMBER_STREAM = 0x4D454D
KIND_CODES = {"lse": 0, "rse": 1}

# A draw: (source, configuration, replicate) positions of its members, in the ensemble's order.
Draw = tuple[tuple[int, int, int], ...]


def base_draw(sources: list[PoolSource]) -> Draw:
    """The ensemble itself: each source's top ``take`` configurations, replicate 0."""
    return tuple((s, k, 0) for s, source in enumerate(sources) for k in range(source.take))


def _one_draw(sources: list[PoolSource], rng: np.random.Generator) -> Draw:
    members = []
    for s, source in enumerate(sources):
        taken = np.sort(rng.choice(len(source.configs), size=source.take, replace=False))
        for k in taken.tolist():
            members.append((s, k, int(rng.integers(len(source.configs[k])))))
    return tuple(members)


def member_draws(sources: list[PoolSource], n_draws: int, seed: int, size: int, kind: str) -> list[Draw]:
    """``n_draws`` member sets of one ensemble (see the module docstring)."""
    rng = np.random.default_rng([MEMBER_STREAM, int(seed), int(size), KIND_CODES[kind]])
    return [_one_draw(sources, rng) for _ in range(int(n_draws))]


def resample_draws(n_resamples: int, n_draws: int, kind: str) -> np.ndarray:
    """(B,) the draw each resample fuses: ``b mod M`` for the LSE, ``(b div M) mod M`` for the RSE."""
    b = np.arange(int(n_resamples))
    return b % n_draws if kind == "lse" else (b // n_draws) % n_draws


def draw_model_ids(sources: list[PoolSource], draw: Draw) -> list[str]:
    """The model ids of a draw's members, in the ensemble's order."""
    return [sources[s].configs[k][r] for s, k, r in draw]


# The replicate draws of single models (significance.csv): a stream of their own.
REPLICATE_STREAM = 0x524550


def replicate_choices(n_replicates: int, n_resamples: int, seed: int, strategy: str, config_id: str) -> np.ndarray:
    """(B,) which replicate of a single model each resample evaluates: uniform over its ``n_replicates``
    (with replacement: a single model has no member set to keep distinct), from ``default_rng([REPLICATE_STREAM,
    seed, first 32 bits of the SHA-1 of "<strategy>/<config id>"])``, so every model draws on its own."""
    import hashlib

    tag = int(hashlib.sha1(f"{strategy}/{config_id}".encode("utf-8")).hexdigest()[:8], 16)
    rng = np.random.default_rng([REPLICATE_STREAM, int(seed), tag])
    return rng.integers(0, int(n_replicates), size=int(n_resamples))
