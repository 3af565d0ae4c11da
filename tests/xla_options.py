"""XLA:CPU options of the test run (``tests/conftest.py`` puts them in ``XLA_FLAGS``) and the
per-program options of the few test programs whose run time, not their compilation,
dominates."""
import os

# No LLVM optimisation, element-wise fusions through XLA's elemental emitter: the fastest
# compilation that keeps every parity test within its tolerance (see tests/conftest.py).
FAST_COMPILE_FLAGS = ("--xla_backend_optimization_level=0", "--xla_cpu_use_fusion_emitters=false")


def run_time_options() -> dict:
    """``compiler_options`` for ``jax.jit`` of a program that runs longer than it compiles:
    level-1 LLVM optimisation and XLA's fusion emitters (the elemental emitter's unoptimised
    gathers and reductions run up to 6x slower, e.g. torchvision's bicubic heatmap resize of
    Keypoint R-CNN). Empty when ``VAI_JAX_TEST_XLA_FLAGS=default`` keeps XLA's defaults."""
    if os.environ.get("VAI_JAX_TEST_XLA_FLAGS") == "default":
        return {}
    return {"xla_backend_optimization_level": 1, "xla_llvm_disable_expensive_passes": True,
            "xla_cpu_use_fusion_emitters": True}
