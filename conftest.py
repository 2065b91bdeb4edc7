"""Hypothesis profiles for every test folder: `ci` (default, bounded) and `thorough`.

Choose with `--hypothesis-profile thorough` or HYPOTHESIS_PROFILE.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

pytest_plugins = ["notify_stack.fixtures", "pytester"]

settings.register_profile("ci", max_examples=30, deadline=None, print_blob=True)
settings.register_profile(
    "thorough",
    max_examples=400,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
