"""Which CPU kernels torch and the libraries under it run, and how ``resources.reproducible`` pins them.

torch picks its CPU kernels at run time from what the CPU can do: ATen's vectorized kernels (AVX2 or
AVX-512), oneDNN's JIT convolutions (up to AVX-512 with bf16/AMX), MKL's BLAS. Two machines with the same
code, data and seeds therefore round differently. Each library reads one environment variable, once, when
it loads, so the pin must be in a job's environment before torch is imported: the workflow sets it in its
own environment at parse time (``workflow/rules/common.smk``), which every job inherits (a cluster job
parses the Snakefile again on its node).

:data:`REPRODUCIBLE_KERNELS` pins each to AVX2 (with FMA), which every current x86-64 server has; what it
buys and what it costs was measured with ``benchmarks/bench_reproducible.py`` (docs: Reproducibility).
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

REPRODUCIBLE_KERNELS = {
    # ATen's own vectorized kernels (reductions, activations, optimizer steps): avx2, not avx512
    "ATEN_CPU_CAPABILITY": "avx2",
    # oneDNN (torch's CPU convolutions): no ISA above AVX2 (read by oneDNN v3; DNNL_ is the older name)
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    # MKL (torch's BLAS: linear layers, matrix products): the conditional-numerical-reproducibility AVX2
    # branch; STRICT: also independent of the arrays' memory alignment. (On AMD CPUs MKL runs it as its AUTO
    # branch: MKL's AVX2 guarantee covers Intel CPUs.)
    "MKL_CBWR": "AVX2,STRICT",
}

# Every variable that changes which CPU kernels run; a job records those set in its environment.
KERNEL_VARIABLES = (
    "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS",
    "MKL_DEBUG_CPU_TYPE", "OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES", "NPY_ENABLE_CPU_FEATURES",
)


def pin_cpu_kernels(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set :data:`REPRODUCIBLE_KERNELS` in ``environ`` (default: this process's environment, which the
    processes it starts inherit); return the variables whose value changed."""
    environ = os.environ if environ is None else environ
    changed = {k: v for k, v in REPRODUCIBLE_KERNELS.items() if environ.get(k) != v}
    environ.update(REPRODUCIBLE_KERNELS)
    return changed


def kernels_pinned(environ: MutableMapping[str, str] | None = None) -> bool:
    """True when ``environ`` (default: this process's) holds every variable of :data:`REPRODUCIBLE_KERNELS`."""
    environ = os.environ if environ is None else environ
    return all(environ.get(k) == v for k, v in REPRODUCIBLE_KERNELS.items())
