"""XLA's CPU code generation, tuned before the first XLA compile.

On CPUs with AVX-512, XLA emits 256-bit vector code unless told otherwise; 512-bit vectors made a
MiniLM training step under `jit_compile=True` 6-8 % faster on our 2-core AMD EPYC machines
(tools/bench_train.py). XLA reads `XLA_FLAGS` once, at its first compile, so `import tfft`
adds `--xla_cpu_prefer_vector_width=512` there, unless:

- the variable already sets `xla_cpu_prefer_vector_width` (yours wins),
- `TFFT_XLA_CPU_TUNING=0` is set, or
- the CPU lacks AVX-512 (read from /proc/cpuinfo; elsewhere nothing is changed).

Import tfft before the first `jit_compile` call for it to apply; after it, the flag is ignored.
"""

import os

VECTOR_WIDTH_FLAG = "--xla_cpu_prefer_vector_width"


def cpu_has_avx512(cpuinfo="/proc/cpuinfo"):
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            return any(line.startswith("flags") and " avx512f" in line for line in f)
    except OSError:
        return False


def tune_cpu_codegen(environ=os.environ, cpuinfo="/proc/cpuinfo"):
    """Adds the 512-bit vector width flag to `environ["XLA_FLAGS"]` where it applies; returns
    whether it did."""
    flags = environ.get("XLA_FLAGS", "")
    if environ.get("TFFT_XLA_CPU_TUNING", "1") == "0" or VECTOR_WIDTH_FLAG in flags:
        return False
    if not cpu_has_avx512(cpuinfo):
        return False
    environ["XLA_FLAGS"] = f"{flags} {VECTOR_WIDTH_FLAG}=512".strip()
    return True
