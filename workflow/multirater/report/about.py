"""Where a run ran, as reStructuredText for the report's front page, from ``results/run.json``
(:func:`multirater.core.provenance.run_record`)."""

from __future__ import annotations

from typing import Any

from multirater.core.kernels import REPRODUCIBLE_KERNELS

SHOWN_JOBS = 6  # a group's jobs named on the page; run.json names them all


def kernels_text(kernels: dict[str, str]) -> str:
    """How a training's CPU kernels were chosen: pinned (resources.reproducible), native, or the variables set."""
    if all(kernels.get(k) == v for k, v in REPRODUCIBLE_KERNELS.items()):
        return "pinned to AVX2 (``resources.reproducible``)"
    if not kernels:
        return "the machine's own (``resources.reproducible`` off)"
    return "set by " + ", ".join(f"``{k}={v}``" for k, v in sorted(kernels.items()))


def environment_text(env: dict[str, Any]) -> str:
    """One environment's facts in a sentence."""
    device = env["device"] if env.get("gpu") is None else f"{env['device']} ({env['gpu']})"
    versions = env["versions"]
    commit = "" if env.get("commit") is None else (
        f"; commit ``{env['commit'][:10]}``" + (" with uncommitted changes" if env.get("dirty") else ""))
    return (f"CPU {env['cpu']}, torch dispatching to {env['cpu_capability']}, {env['threads']} thread(s), device "
            f"{device}; torch {versions['torch']}, torchvision {versions['torchvision']}, numpy {versions['numpy']}, "
            f"multirater {versions['multirater']}; CPU kernels {kernels_text(env.get('kernels') or {})}{commit}")


def _jobs(jobs: list[str]) -> str:
    shown = ", ".join(f"``{j}``" for j in jobs[:SHOWN_JOBS])
    return shown + (f" and {len(jobs) - SHOWN_JOBS} more" if len(jobs) > SHOWN_JOBS else "")


def about_text(record: dict[str, Any]) -> str:
    """The front page's *Where it ran*: the checkout, the workflow's machine, and each training environment;
    a mixed run says so."""
    commit = ("not a git checkout" if record.get("commit") is None else
              f"commit ``{record['commit'][:10]}``"
              + (" with uncommitted changes in tracked files" if record.get("dirty") else " (clean)"))
    workflow = record["workflow"]
    lines = [f"**Where it ran** (``run.json``). The workflow: {commit}, snakemake "
             f"{workflow['versions']['snakemake']}, on host ``{workflow['host']}``.", ""]
    groups = record["trainings"]
    count = sum(len(g["jobs"]) for g in groups)
    if not record["mixed"] and groups:
        g = groups[0]
        hosts = ", ".join(f"``{h}``" for h in g["hosts"]) or "unknown"
        if g["environment"] is None:
            lines.append(f"The {count} training(s) recorded no environment (trained before runs recorded it).")
        else:
            lines.append(f"All {count} training(s) ran in one environment (host {hosts}): "
                         f"{environment_text(g['environment'])}.")
    elif groups:
        lines.append(f"**Mixed run:** the {count} trainings ran in {len(groups)} different environments, so its "
                     "numbers depend on which model ran where:")
        lines.append("")
        for g in groups:
            where = ("no environment recorded (trained before runs recorded it)" if g["environment"] is None
                     else f"host {', '.join(f'``{h}``' for h in g['hosts']) or 'unknown'}: "
                          f"{environment_text(g['environment'])}")
            lines.append(f"- {len(g['jobs'])} training(s) ({_jobs(g['jobs'])}): {where}")
    return "\n".join(lines) + "\n"
