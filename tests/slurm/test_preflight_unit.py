"""The SLURM pre-flight on canned `sinfo` output (no cluster needed: runs under plain `make test`).
Expected values are worked out by hand from the canned lines and SLURM's documented formats."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from multirater.core.errors import UserError
from multirater.slurm.nodes import gpu_count, minutes, parse_sinfo
from multirater.slurm.preflight import check, first_unmet, problems
from multirater.slurm.requests import Request, attempt_requests_of_run, request_of, requests_of_run

NEEDS_CLUSTER = False

# `sinfo --noheader --Node --format="%P|%N|%c|%m|%G|%l"` of a small site: a default CPU partition of
# two node sizes, a GPU partition with a 2-hour limit, a short partition sharing c01.
SINFO = """\
cpu*|c01|32|192000|(null)|1-00:00:00
cpu*|c02|64|256000|(null)|1-00:00:00
gpu|g01|16|128000|gpu:a100:4(S:0-1)|2:00:00
gpu|g02|8|64000|gpu:v100:2,tmpdisk:100|2:00:00
short|c01|32|192000|(null)|30:00
"""
NODES = parse_sinfo(SINFO)


def request(what: str = "rule train", *, rules: tuple[str, ...] | None = None, partitions: tuple[str, ...] = (),
            cpus: int = 1, mem_mb: int | None = 1000, gpus: int = 0, runtime_min: int | None = 10, attempt: int = 1,
            attempts: int = 1) -> Request:
    return Request(what=what, rules=rules or (what.split()[1],), partitions=partitions, cpus=cpus, mem_mb=mem_mb,
                   gpus=gpus, runtime_min=runtime_min, attempt=attempt, attempts=attempts)


def test_sinfo_lines_become_nodes() -> None:
    assert [(n.partition, n.name, n.cpus, n.mem_mb, n.gpus, n.time_limit_min, n.default) for n in NODES] == [
        ("cpu", "c01", 32, 192000, 0, 1440, True),
        ("cpu", "c02", 64, 256000, 0, 1440, True),
        ("gpu", "g01", 16, 128000, 4, 120, False),
        ("gpu", "g02", 8, 64000, 2, 120, False),
        ("short", "c01", 32, 192000, 0, 30, False),
    ]


@pytest.mark.parametrize("limit, expected", [
    ("infinite", None), ("UNLIMITED", None), ("45", 45), ("30:00", 30), ("0:30", 1), ("2:00:00", 120),
    ("1-00:00:00", 1440), ("1-12", 2160), ("1-00:30", 1470), ("2-03:04:05", 2 * 1440 + 3 * 60 + 5),
])
def test_time_limits_in_minutes(limit: str, expected: int | None) -> None:
    assert minutes(limit) == expected


@pytest.mark.parametrize("gres, expected", [
    ("(null)", 0), ("gpu:4", 4), ("gpu:a100:4(S:0-1)", 4), ("gpu:a100:2,gpu:v100:2", 4), ("gpu", 1),
    ("tmpdisk:100", 0), ("tmpdisk:100,gpu:1(IDX:0)", 1),
])
def test_gpus_in_gres(gres: str, expected: int) -> None:
    assert gpu_count(gres) == expected


def test_a_bad_sinfo_line_is_a_clear_error() -> None:
    with pytest.raises(UserError, match="line 2"):
        parse_sinfo("cpu*|c01|32|192000|(null)|1-00:00:00\ncpu*|c02|many|256000|(null)|1-00:00:00\n")


def test_requests_follow_the_plugins_sbatch_options() -> None:
    # threads become --cpus-per-task, also for a GPU job without cpus_per_gpu
    assert request_of("rule train", ("train",), {"gpu": 1, "mem_mb": 32000, "runtime": 720}, 8) == Request(
        "rule train", ("train",), (), 8, 32000, 1, 720)
    # cpus_per_gpu x GPUs (--cpus-per-gpu), cpus_per_task wins over threads, memory per CPU x CPUs
    assert request_of("r", ("r",), {"gpu": 2, "cpus_per_gpu": 4}, 1).cpus == 8
    assert request_of("r", ("r",), {"cpus_per_task": 3}, 8).cpus == 3
    assert request_of("r", ("r",), {"mem_mb_per_cpu": 1000, "mem_mb": 99}, 4).mem_mb == 4000
    # GPUs from gres, partitions from a comma-separated slurm_partition, unknown sizes stay unknown
    assert request_of("r", ("r",), {"gres": "gpu:a100:2"}, 1).gpus == 2
    assert request_of("r", ("r",), {"gpu": 0}, 1).gpus == 0
    assert request_of("r", ("r",), {"slurm_partition": "gpu, short"}, 1).partitions == ("gpu", "short")
    assert request_of("r", ("r",), {"mem_mb": "<TBD>"}, 1).mem_mb is None


def test_requests_that_fit_some_node_pass() -> None:
    check([
        request(cpus=64, mem_mb=256000, runtime_min=1440),  # exactly c02, default partition
        request(partitions=("gpu",), cpus=16, mem_mb=128000, gpus=4, runtime_min=120),  # exactly g01
        request(partitions=("gpu", "cpu"), cpus=48),  # too big for gpu, fits cpu
        request(mem_mb=None, runtime_min=None),
    ], NODES)


def test_a_request_no_node_can_meet_names_the_rule_its_request_and_the_largest_node() -> None:
    with pytest.raises(UserError) as error:
        check([request(mem_mb=999999), request("rule predict")], NODES)
    message = str(error.value)
    assert message.startswith("SLURM pre-flight: rule train asks for 1 CPU, 999999 MB, 0 GPUs, 10 min;")
    assert "the largest node has 64 CPUs, 256000 MB, 0 GPUs (node c02, partition cpu" in message
    assert "predict" not in message.split("Nothing was submitted")[0]
    assert "Nothing was submitted" in message


@pytest.mark.parametrize("too_much", [
    dict(partitions=("gpu",), gpus=8),  # more GPUs than any gpu node
    dict(partitions=("gpu",), gpus=4, cpus=17),  # g01 has the GPUs, not the CPUs
    dict(partitions=("gpu",), gpus=1, runtime_min=121),  # over the partition's 2 h
    dict(partitions=("short",), runtime_min=31),
    dict(cpus=65),  # the default partition's largest node has 64
    dict(mem_mb=256001),
])
def test_each_dimension_is_checked(too_much: dict) -> None:
    assert len(problems([request(**too_much)], NODES)) == 1


def test_no_single_node_with_everything() -> None:
    # one node has the CPUs, another the memory: the request fits neither
    nodes = parse_sinfo("p*|wide|64|64000|(null)|infinite\np*|deep|8|512000|(null)|infinite\n")
    [line] = problems([request(cpus=32, mem_mb=128000)], nodes)
    assert "the largest node has 64 CPUs, 64000 MB" in line


def test_an_unknown_partition_is_named_with_the_known_ones() -> None:
    [line] = problems([request(partitions=("bigmem",))], NODES)
    assert "partition bigmem" in line and "cpu, gpu, short" in line


def test_identical_requests_of_many_jobs_make_one_line() -> None:
    many = [request(f"group model_ls_{i:08x} (predict, train)", rules=("predict", "train"), mem_mb=999999)
            for i in range(3)]
    [line] = problems(many, NODES)
    assert line.startswith("group model_ls_00000000 (predict, train) and 2 more like it each ask for")


class FakeJob(SimpleNamespace):
    def is_group(self) -> bool:
        return False


class FakeGroup(SimpleNamespace):
    def is_group(self) -> bool:
        return True


def test_a_run_asks_once_per_slurm_job_and_never_for_local_rules() -> None:
    rule = lambda name: SimpleNamespace(name=name)  # noqa: E731
    train = FakeJob(rule=rule("train"), is_local=False)
    predict = FakeJob(rule=rule("predict"), is_local=False)
    select = FakeJob(rule=rule("select"), is_local=True)
    pretrain = FakeJob(rule=rule("pretrain"), is_local=False, resources={"gpu": 1, "mem_mb": 8000}, threads=4)
    group = FakeGroup(groupid="model_ls_1a2b3c4d", jobs=[train, predict], resources={"mem_mb": 2000}, threads=2)
    groups = {id(train): group, id(predict): group}
    dag = SimpleNamespace(needrun_jobs=lambda: [pretrain, train, predict, select],
                          get_job_group=lambda job: groups.get(id(job)))
    assert requests_of_run(dag) == [
        Request("rule pretrain", ("pretrain",), (), 4, 8000, 1, None),
        Request("group model_ls_1a2b3c4d (predict, train)", ("predict", "train"), (), 2, 2000, 0, None),
    ]


def test_a_retry_whose_time_limit_outgrows_the_partition_names_the_attempt_the_request_and_the_limit() -> None:
    # the workflow's time limits are minutes x attempt: 70 min fits the gpu partition's 2 h, 140 does not
    group = "group model_ls_1a2b3c4d (evaluate_detections, predict, train)"
    attempts = [request(group, rules=("evaluate_detections", "predict", "train"), partitions=("gpu",), gpus=1,
                        runtime_min=70 * attempt, attempt=attempt, attempts=2) for attempt in (1, 2)]
    assert problems(attempts[:1], NODES) == []
    chosen = first_unmet(attempts, NODES)
    assert chosen.attempt == 2
    with pytest.raises(UserError) as error:
        check([chosen], NODES)
    assert str(error.value).startswith(
        f"SLURM pre-flight: {group} at attempt 2 of 2 (a retry: `retries` of the profile; its time limit grows "
        "with the attempt) asks for 1 CPU, 1000 MB, 1 GPU, 140 min; partition gpu allows 120 min: lower "
        "resources.train_runtime / predict_runtime (minutes per attempt), allow fewer retries (--retries 0), or "
        "send the job to a partition with a longer limit. Nothing was submitted.")
    # a first attempt that already fits no node is the one named
    assert first_unmet([request(mem_mb=999999, attempts=2), request(mem_mb=999999, attempt=2, attempts=2)],
                       NODES).attempt == 1
    assert first_unmet(attempts[:1], NODES) == attempts[0]  # every attempt fits: the first


def test_gpus_asked_of_a_partition_without_any_name_the_fix() -> None:
    [line] = problems([request(gpus=1)], NODES)  # the default partition, cpu, has no GPU
    assert line == ("rule train asks for 1 CPU, 1000 MB, 1 GPU, 10 min; the largest node has 64 CPUs, 256000 MB, "
                    "0 GPUs (node c02, partition cpu, a 1440 min limit); partition cpu has no GPU: name the GPU "
                    "partition (slurm.gpu.partition in the site file) or ask for none (slurm.gpu.count: 0)")


class Retried(SimpleNamespace):
    """A job as Snakemake has it: setting its attempt recomputes its resources (here: 30 min x attempt)."""

    def is_group(self) -> bool:
        return False

    @property
    def resources(self) -> dict:
        return {"runtime": 30 * self.attempt, "mem_mb": 100}


def test_a_run_asks_at_every_attempt_its_retries_allow_and_leaves_the_jobs_at_their_attempt() -> None:
    job = Retried(rule=SimpleNamespace(name="train"), is_local=False, threads=1, attempt=1, restart_times=2)
    dag = SimpleNamespace(needrun_jobs=lambda: [job], get_job_group=lambda job: None)
    [attempts] = attempt_requests_of_run(dag)
    assert [(r.attempt, r.attempts, r.runtime_min) for r in attempts] == [(1, 3, 30), (2, 3, 60), (3, 3, 90)]
    assert job.attempt == 1
