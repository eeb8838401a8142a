"""tfft._xla: the AVX-512 vector-width flag for XLA's CPU code generation."""

from tfft._xla import tune_cpu_codegen


def _cpuinfo(tmp_path, flags):
    path = tmp_path / f"cpuinfo-{flags.replace(' ', '-') or 'plain'}"
    path.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 avx2 {flags}\n")
    return str(path)


def test_adds_the_flag_on_avx512_and_keeps_other_flags(tmp_path):
    environ = {"XLA_FLAGS": "--xla_cpu_use_xnnpack=true"}
    assert tune_cpu_codegen(environ, _cpuinfo(tmp_path, "avx512f avx512bw"))
    assert environ["XLA_FLAGS"] == "--xla_cpu_use_xnnpack=true --xla_cpu_prefer_vector_width=512"
    assert not tune_cpu_codegen(environ, _cpuinfo(tmp_path, "avx512f"))  # already there: not twice
    assert environ["XLA_FLAGS"].count("prefer_vector_width") == 1


def test_leaves_the_environment_alone_when_it_does_not_apply(tmp_path):
    cases = [
        ({}, _cpuinfo(tmp_path, "")),  # no AVX-512
        ({}, str(tmp_path / "missing")),  # no /proc/cpuinfo
        ({"TFFT_XLA_CPU_TUNING": "0"}, _cpuinfo(tmp_path, "avx512f")),  # opted out
        ({"XLA_FLAGS": "--xla_cpu_prefer_vector_width=256"}, _cpuinfo(tmp_path, "avx512f")),  # the user's choice
    ]
    for environ, cpuinfo in cases:
        before = dict(environ)
        assert not tune_cpu_codegen(environ, cpuinfo)
        assert environ == before
