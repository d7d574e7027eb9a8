"""Test session setup: float64 for the theorem tests, two CPU devices (so that work spread
over devices with ``jax.sharding`` is really split), and hypothesis profiles.

Profiles (select with HYPOTHESIS_PROFILE): ``ci`` (default, quick), ``dev``, ``thorough``.
"""

import os

import jax
from hypothesis import HealthCheck, settings

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_num_cpu_devices", 2)

settings.register_profile(
    "ci",
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile(
    "thorough", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config):
    # pytest-xdist's mark, declared here too so that runs without xdist (-p no:xdist) know it
    config.addinivalue_line("markers", "xdist_group(name): run these tests on one xdist worker")
