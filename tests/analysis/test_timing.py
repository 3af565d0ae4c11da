"""time_calls (warm-up excluded, blocks on the outputs, stateful closures) and the machine
description."""
import jax
import jax.numpy as jnp
import pytest

from vai_jax.analysis.timing import CallTime, describe_devices, machine_info, time_calls


def test_time_calls_counts_warmup_and_timed_calls():
    calls = []
    step = jax.jit(lambda x: x + 1)
    state = [jnp.zeros(3)]

    def one():
        calls.append(1)
        state[0] = step(state[0])
        return state[0]

    t = time_calls(one, num_steps=3, warmup_steps=2)
    assert isinstance(t, CallTime) and t.wall_s > 0 and t.cpu_s >= 0
    assert len(calls) == 5 and float(state[0][0]) == 5.0
    time_calls(one, num_steps=1, warmup_steps=0)  # at least one warm-up call
    assert len(calls) == 7
    with pytest.raises(ValueError, match="num_steps"):
        time_calls(one, num_steps=0)


def test_describe_devices_and_machine_info():
    text = describe_devices()
    assert text.startswith(f"{jax.device_count()} x ")
    if jax.default_backend() == "cpu":
        assert "cores visible" in text
    info = machine_info()
    assert info["devices"] == text and info["jax_version"] == jax.__version__
    assert info["cpu_count"] >= 1 and info["backend"] == jax.default_backend()
