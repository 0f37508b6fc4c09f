"""The nodes SLURM offers, per partition, read from `sinfo` (one line per node and partition)."""

from __future__ import annotations

import math
import re
import subprocess
from dataclasses import dataclass

from multirater.core.errors import UserError

# partition (a trailing * marks the default), node, CPUs, memory (MB), generic resources, time limit
SINFO_FORMAT = "%P|%N|%c|%m|%G|%l"
SINFO_COMMAND = ["sinfo", "--noheader", "--Node", f"--format={SINFO_FORMAT}"]
UNLIMITED = {"infinite", "unlimited", "n/a", "none", ""}


@dataclass(frozen=True)
class Node:
    """One node as one partition offers it."""

    partition: str
    name: str
    cpus: int
    mem_mb: int
    gpus: int
    time_limit_min: int | None  # the partition's limit; None: unlimited
    default: bool  # the cluster's default partition (where a job without -p goes)


def gpu_count(gres: str) -> int:
    """GPUs in a GRES string: ``gpu:4``, ``gpu:a100:2(S:0-1)``, ``gpu:a100:2,gpu:v100:2``, ``(null)``."""
    total = 0
    for entry in re.sub(r"\([^)]*\)", "", gres).split(","):
        fields = entry.strip().split(":")
        if fields[0] != "gpu":
            continue
        count = fields[-1] if len(fields) > 1 else "1"
        # a count may carry a unit suffix (K/M/G) for countable resources; GPUs never do in practice
        total += int(count) if count.isdigit() else 1
    return total


def minutes(limit: str) -> int | None:
    """A SLURM time limit in minutes (rounded up); None for unlimited.

    SLURM writes MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS."""
    text = limit.strip()
    if text.lower() in UNLIMITED:
        return None
    days = 0
    if "-" in text:  # after a day count the fields are hours[:minutes[:seconds]]
        day_text, text = text.split("-", 1)
        days = int(day_text)
        hours, mins, secs = ([int(p) for p in text.split(":")] + [0, 0])[:3]
    else:
        parts = [int(p) for p in text.split(":")]
        if not 1 <= len(parts) <= 3:
            raise ValueError(f"not a SLURM time limit: {limit!r}")
        hours, mins, secs = ([0, 0] + parts)[-3:] if len(parts) > 1 else (0, parts[0], 0)
    seconds = ((days * 24 + hours) * 60 + mins) * 60 + secs
    return math.ceil(seconds / 60)


def _count(field: str) -> int:
    # sinfo appends + when it folds several values into one line
    return int(field.strip().rstrip("+"))


def parse_sinfo(text: str) -> list[Node]:
    """The nodes in `sinfo --noheader --Node --format=SINFO_FORMAT` output."""
    nodes = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.strip().split("|")
        if len(fields) != 6:
            raise UserError(f"line {number}: expected 6 fields ({SINFO_FORMAT}), got {line!r}", item="sinfo")
        partition, name, cpus, mem, gres, limit = fields
        try:
            nodes.append(
                Node(
                    partition=partition.rstrip("*"),
                    name=name,
                    cpus=_count(cpus),
                    mem_mb=_count(mem),
                    gpus=gpu_count(gres),
                    time_limit_min=minutes(limit),
                    default=partition.endswith("*"),
                )
            )
        except ValueError:
            raise UserError(f"line {number}: cannot read {line!r}", item="sinfo") from None
    return nodes


def read_nodes(timeout: float = 60) -> list[Node]:
    """Every node of every partition, from the cluster's `sinfo`."""
    try:
        done = subprocess.run(SINFO_COMMAND, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise UserError("sinfo is not installed here", item="sinfo") from None
    except subprocess.TimeoutExpired:
        raise UserError(f"no answer within {timeout:g} s", item="sinfo") from None
    if done.returncode != 0:
        raise UserError(done.stderr.strip() or f"exit status {done.returncode}", item="sinfo")
    return parse_sinfo(done.stdout)
