"""What freezing the imported objects saves a short job (multirater.cli.import_frozen).

A command that declares its heavy modules (``set_defaults(imports=...)``) imports them with the cyclic garbage
collector off and then freezes every object there is. This script times real jobs of the tests' size, each a
fresh process, with the CLI as it is against the same CLI with ``import_frozen`` replaced by a no-op (the
command's handler then imports the same modules itself, collector on), alternating the two, best of N:

- ``train``: the tiny detector, 2 epochs on 12 synthetic 96 px images (as tests/test_workflow.py's CONFIG);
- ``predict``: that model on the validation and test images;
- ``agreement``: the agreement statistics and the two agreement figures of the same dataset.

    python benchmarks/bench_startup.py            # --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
NO_FREEZE = "import sys, multirater.cli as c; c.import_frozen = lambda modules: None; sys.exit(c.main(sys.argv[1:]))"
AS_IS = "import sys, multirater.cli as c; sys.exit(c.main(sys.argv[1:]))"


def run(code: str, argv: list[str]) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, *argv], check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def multirater(*argv: str) -> None:
    subprocess.run([str(BIN / "multirater"), *argv], check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        multirater("synth", "--out", str(root / "ds"), "--seed", "3", "--images", "16", "--consensus-images", "5",
                   "--size", "96")
        dataset, splits = str(root / "ds" / "dataset.yaml"), str(root / "splits.json")
        multirater("split", "--dataset", dataset, "--out", splits)
        (root / "job.yaml").write_text(json.dumps({
            "model": {"name": "tiny", "min_size": 96, "max_size": 96, "detections_per_img": 50},
            "training": {"epochs": 2, "patience": 2, "batch_size": 4, "augment": False}, "config_id": "bench"}))
        train = ["train", "--dataset", dataset, "--splits", splits, "--strategy", "ls", "--config",
                 str(root / "job.yaml"), "--device", "cpu", "--threads", "1", "--loader-workers", "0"]
        multirater(*train, "--out", str(root / "model"))
        jobs = {
            "train": lambda k: [*train, "--out", str(root / f"model{k}")],
            "predict": lambda k: ["predict", "--model", str(root / "model"), "--dataset", dataset, "--splits", splits,
                                  "--images", "val", "test", "--out", str(root / "v.json"), str(root / "t.json"),
                                  "--device", "cpu", "--threads", "1"],
            "agreement": lambda k: ["agreement", "--dataset", dataset, "--out", str(root / f"agreement{k}")],
        }
        print("| job | collector on during imports (s) | imports frozen (s) | ratio |")
        print("|---|---|---|---|")
        for name, argv in jobs.items():
            times: dict[str, list[float]] = {"on": [], "frozen": []}
            for k in range(args.repeats):
                times["on"].append(run(NO_FREEZE, argv(f"on{k}")))
                times["frozen"].append(run(AS_IS, argv(f"frozen{k}")))
            on, frozen = min(times["on"]), min(times["frozen"])
            print(f"| {name} | {on:.2f} | {frozen:.2f} | {frozen / on:.2f} |")


if __name__ == "__main__":
    main()
