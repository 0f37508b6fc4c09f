"""The names of the experiment's designs, in one place: whose labels a model learns from (its strategy) and how
models are fused into ensembles (the ensemble kinds). The workflow's paths and wildcards, the CLI's choices,
the tables and the figures take them from here; tests/test_registries.py keeps the schema equal to them.

Strategies (a model's ``strategy``, its folder ``results/models/<strategy>/``), by family:

- ``ls``, label sampling: every epoch, each image's labels drawn from one of the raters who labelled it;
- ``rs-<rater>``, rater-specific: that rater's labels only (``rs:<rater>`` is accepted on the command line);
- ``union``: every rater's boxes together (the pretrain job only).

Ensemble kinds (``results/ensembles/<kind>/<size>/``): ``lse``, the top S label-sampling models, and ``rse``,
the top S/R rater-specific models of each of the R raters. A new kind is one entry of ``ENSEMBLE_KINDS``.
"""

from __future__ import annotations

from dataclasses import dataclass

from multirater.core.errors import UserError

LS = "ls"
RS = "rs"
UNION = "union"
RS_PREFIX = "rs-"
RS_PREFIXES = (RS_PREFIX, "rs:")  # rs:<rater> is the command line's alias of rs-<rater>


def rater_specific(rater: str) -> str:
    """The strategy of ``rater``'s rater-specific models: ``rs-<rater>``."""
    return f"{RS_PREFIX}{rater}"


def strategy_names(raters: list[str]) -> list[str]:
    """The experiment's strategies for these raters, in order: ``ls``, then ``rs-<rater>`` per rater."""
    return [LS, *map(rater_specific, raters)]


def strategy_rater(strategy: str) -> str | None:
    """The rater of a rater-specific strategy (``rs-<rater>`` or ``rs:<rater>``), None for any other."""
    for prefix in RS_PREFIXES:
        if strategy.startswith(prefix):
            return strategy[len(prefix):]
    return None


def strategy_family(strategy: str) -> str:
    """``ls``, ``rs`` (any ``rs-<rater>``) or the strategy itself (``union``): the family is also the
    ``selection`` key that says how many of its models are selected."""
    return RS if strategy_rater(strategy) is not None else strategy


def strategy_order(strategy: str) -> tuple[int, str]:
    """Sort key of strategies: ``ls`` first, then the rater-specific strategies by rater name."""
    return (0 if strategy_family(strategy) == LS else 1, strategy)


def strategy_label(strategy: str) -> str:
    """How tables write a strategy: ``LS``, or ``RS (<rater>)``."""
    rater = strategy_rater(strategy)
    return strategy.upper() if rater is None else f"{RS.upper()} ({rater})"


@dataclass(frozen=True)
class EnsembleKind:
    """An ensemble kind: the strategy family of its members (``ls``, or ``rs``: an equal share of each rater's
    rater-specific models) and how tables and figures write it."""

    members: str
    label: str

    @property
    def per_rater(self) -> bool:
        """Whether its members come in equal shares from each rater's models (the size is a multiple of R)."""
        return self.members == RS

    def members_per_source(self, size: int, n_raters: int) -> int:
        """How many selected models of each source (the ls models, or each rater's) an ensemble of ``size``
        takes (rounded down; the config check says when ``size`` is no multiple of the raters)."""
        return size // n_raters if self.per_rater else size


LSE = "lse"
RSE = "rse"
ENSEMBLE_KINDS: dict[str, EnsembleKind] = {
    LSE: EnsembleKind(members=LS, label="LSE"),
    RSE: EnsembleKind(members=RS, label="RSE"),
}


def ensemble_kind(kind: str, file: str | None = None, item: str = "kind") -> EnsembleKind:
    """The registered kind ``kind``; an unknown name is a UserError naming the known ones."""
    if kind not in ENSEMBLE_KINDS:
        raise UserError(f"kind must be {' or '.join(ENSEMBLE_KINDS)}, got {kind!r}", file, item)
    return ENSEMBLE_KINDS[kind]


def ensemble_of(strategy: str) -> str:
    """The ensemble kind whose members are of ``strategy``'s family: lse for ls, rse for rs-<rater>."""
    family = strategy_family(strategy)
    for kind, spec in ENSEMBLE_KINDS.items():
        if spec.members == family:
            return kind
    raise UserError(f"no ensemble kind fuses {strategy} models", None, "strategy")
