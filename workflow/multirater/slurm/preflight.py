"""The pre-flight itself: every request against the nodes of its partitions, and the one message
that stops the run when some request fits no node (SLURM would keep it PENDING forever)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from multirater.core.errors import UserError
from multirater.slurm.nodes import Node, read_nodes
from multirater.slurm.requests import Request, attempt_requests_of_run

NOTHING_SUBMITTED = "Nothing was submitted."
ADVICE = (
    "Ask for less (resources.* in the workflow config, --set-threads, --set-resources RULE:mem_mb=...) or "
    "send the rule to a larger partition (slurm.cpu.partition / slurm.gpu.partition in the site file)."
)
TIME_ADVICE = (
    "lower resources.train_runtime / predict_runtime (minutes per attempt), allow fewer retries "
    "(--retries 0), or send the job to a partition with a longer limit"
)


def fits(request: Request, node: Node, time: bool = True) -> bool:
    """Whether one node of this partition can run the request (CPUs, memory, GPUs and, unless ``time`` is
    False, the partition's time limit)."""
    return (
        request.cpus <= node.cpus
        and (request.mem_mb is None or request.mem_mb <= node.mem_mb)
        and request.gpus <= node.gpus
        and (not time or request.runtime_min is None or node.time_limit_min is None
             or request.runtime_min <= node.time_limit_min)
    )


def partition_nodes(request: Request, nodes: list[Node]) -> list[Node]:
    """The nodes the request may go to: its partitions', or the default partition's."""
    if request.partitions:
        return [n for n in nodes if n.partition in request.partitions]
    return [n for n in nodes if n.default]


def largest(nodes: list[Node]) -> Node:
    """The biggest node: most GPUs, then CPUs, then memory, then the longest time limit."""

    def size(node: Node) -> tuple[int, int, int, float]:
        limit = float("inf") if node.time_limit_min is None else node.time_limit_min
        return node.gpus, node.cpus, node.mem_mb, limit

    return max(nodes, key=size)


def describe_node(node: Node) -> str:
    """A node in words: ``4 CPUs, 19284 MB, 0 GPUs (node vm, partition debug, no time limit)``."""
    limit = "no time limit" if node.time_limit_min is None else f"a {node.time_limit_min} min limit"
    return (
        f"{node.cpus} CPUs, {node.mem_mb} MB, {node.gpus} GPU{'' if node.gpus == 1 else 's'} "
        f"(node {node.name}, partition {node.partition}, {limit})"
    )


def unmet(request: Request, nodes: list[Node], alike: int = 1) -> str | None:
    """Why no node can run the request (and ``alike - 1`` more like it), in words; None when one can."""
    who = request.what if alike == 1 else f"{request.what} and {alike - 1} more like it"
    if request.attempt > 1:
        who += (f" at attempt {request.attempt} of {request.attempts} (a retry: `retries` of the profile; its "
                "time limit grows with the attempt)")
    candidates = partition_nodes(request, nodes)
    if not candidates:
        known = ", ".join(sorted({n.partition for n in nodes})) or "none"
        where = f"partition {', '.join(request.partitions)}" if request.partitions else "a default partition"
        return f"{who}: {where} is not in sinfo's list (partitions: {known})"
    if any(fits(request, node) for node in candidates):
        return None
    asks = f"{who} {'asks' if alike == 1 else 'each ask'} for {request.describe()}"
    in_time = [node for node in candidates if fits(request, node, time=False)]
    if in_time:  # only the time limit is short
        longest = max(in_time, key=lambda node: node.time_limit_min or 0)
        return f"{asks}; partition {longest.partition} allows {longest.time_limit_min} min: {TIME_ADVICE}"
    line = f"{asks}; the largest node has {describe_node(largest(candidates))}"
    if request.gpus and not any(node.gpus for node in candidates):
        where = ", ".join(sorted({node.partition for node in candidates}))
        line += (f"; partition {where} has no GPU: name the GPU partition (slurm.gpu.partition in the site "
                 "file) or ask for none (slurm.gpu.count: 0)")
    return line


def problems(requests: Iterable[Request], nodes: list[Node]) -> list[str]:
    """One line per distinct request no node can meet (identical requests of many jobs: one line)."""
    alike: dict[tuple, list[Request]] = {}
    for request in requests:
        key = (request.rules, request.partitions, request.cpus, request.mem_mb, request.gpus, request.runtime_min,
               request.attempt, request.attempts)
        alike.setdefault(key, []).append(request)
    found = (unmet(same[0], nodes, alike=len(same)) for same in alike.values())
    return [line for line in found if line is not None]


def first_unmet(attempts: Sequence[Request], nodes: list[Node]) -> Request:
    """The request of a job's first attempt that no node can meet, else its first attempt's."""
    return next((request for request in attempts if unmet(request, nodes) is not None), attempts[0])


def check(requests: Iterable[Request], nodes: list[Node]) -> None:
    """Raise one UserError naming every request no node can meet, with the largest node (or, when only
    the time limit is short, the partition's limit)."""
    found = problems(requests, nodes)
    if found:
        advice = [NOTHING_SUBMITTED]
        if not all(line.endswith(TIME_ADVICE) for line in found):
            advice.append(ADVICE)
        raise UserError("; ".join(found) + ". " + " ".join(advice), item="SLURM pre-flight")


def check_run(dag: object, warn: Callable[[str], None]) -> None:
    """The pre-flight of a snakemake run about to submit to SLURM: its DAG's requests, at every attempt
    the run allows, against `sinfo`. Without an answer from `sinfo` it only warns: sbatch may still work,
    and a check is no reason to stop."""
    try:
        nodes = read_nodes()
    except UserError as error:
        warn(f"SLURM pre-flight skipped: {error}")
        return
    check([first_unmet(attempts, nodes) for attempts in attempt_requests_of_run(dag)], nodes)
