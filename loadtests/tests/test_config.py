from __future__ import annotations

from pathlib import Path
from typing import Any

import configargparse
import pytest

from loadtests.config import (
    SCENARIO_USERS,
    BudgetError,
    LoadEnv,
    RunConfig,
    check_budget,
    from_profile,
)


def test_profiles_and_overrides() -> None:
    smoke = from_profile("smoke")
    assert smoke.users == 300 and smoke.ramp == 2.0
    custom = from_profile("capacity", scenario="idle", users=2000, rate=100, hold=30)
    assert (custom.scenario, custom.users, custom.duration) == ("idle", 2000, 50.0)
    with pytest.raises(BudgetError, match="unknown profile"):
        from_profile("huge")
    with pytest.raises(BudgetError, match="unknown scenario"):
        from_profile("smoke", scenario="storm")


@pytest.mark.parametrize("name", ["smoke", "capacity", "100k", "soak"])
def test_every_profile_fits_this_machine(name: str) -> None:
    assert check_budget(from_profile(name), fd_limit=20_000, ports=28_232)


def test_connections_per_source_and_destination_stay_under_half_the_port_range() -> None:
    too_many = r"source address: 14000 ports to one destination exceeds 13616"
    with pytest.raises(BudgetError, match=too_many):
        check_budget(RunConfig(users=14_000, instances=2), fd_limit=20_000, ports=28_232)


def test_a_run_that_fits_lists_its_budget() -> None:
    lines = check_budget(RunConfig(users=10_000), fd_limit=20_000, ports=28_232)
    assert any("nginx worker: 10000 descriptors" in line for line in lines)


@pytest.mark.parametrize(
    ("config", "named"),
    [
        (RunConfig(users=30_000, instances=1, nginx_workers=4, generator_workers=2), "--instances"),
        (
            RunConfig(
                users=30_000,
                instances=2,
                nginx_workers=4,
                generator_workers=1,
                source_addresses=("127.0.0.2", "127.0.0.3"),
            ),
            "--generator-workers",
        ),
        (RunConfig(users=15_000, nginx_workers=1, generator_workers=2), "--nginx-workers"),
        (
            RunConfig(users=36_000, instances=2, nginx_workers=4, generator_workers=2),
            "--source-addresses",
        ),
    ],
    ids=["server", "generator", "nginx", "ports"],
)
def test_a_run_that_does_not_fit_is_refused_before_starting(config: RunConfig, named: str) -> None:
    with pytest.raises(BudgetError, match=named.replace("-", r"\-")):
        check_budget(config, fd_limit=20_000, ports=28_232)


def test_load_env_round_trips_through_locusts_own_option_parser(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = LoadEnv(
        target="http://127.0.0.1:1",
        secret="s",
        scenario="fanout",
        run_dir=tmp_path,
        publish_from=1.5,
        publish_until=9.5,
        broadcast_interval=2.0,
        publish_rate=3.0,
        users=10,
        rate=25.0,
        generator_workers=2,
        churn_hold=3.0,
        source_addresses=("127.0.0.2", "127.0.0.3"),
        driver_cmd="",
    )
    for name, value in env.to_environ().items():
        monkeypatch.setenv(name, value)

    class LocustLikeParser(configargparse.ArgumentParser):  # type: ignore[misc]
        """Locust's parser is configargparse's with `include_in_web_ui` (importing locust here
        would monkey-patch this test process with gevent)."""

        def add_argument(self, *args: Any, **kwargs: Any) -> Any:
            kwargs.pop("include_in_web_ui", None)
            return super().add_argument(*args, **kwargs)

    def parsed() -> Any:
        parser = LocustLikeParser()
        LoadEnv.add_arguments(parser)
        return parser.parse_args([])

    assert LoadEnv.from_options(parsed()) == env
    assert list(env.to_environ()) == [LoadEnv.VARIABLE]  # one JSON value, not one per field
    monkeypatch.setenv(LoadEnv.VARIABLE, '{"target": "http://x"}')
    with pytest.raises(RuntimeError, match="lacks broadcast_interval"):
        LoadEnv.from_options(parsed())
    monkeypatch.delenv(LoadEnv.VARIABLE)
    with pytest.raises(RuntimeError, match="--notify-run"):
        LoadEnv.from_options(parsed())


def test_every_scenario_names_user_classes_the_locustfile_defines() -> None:
    text = (Path(__file__).parents[1] / "locustfile.py").read_text()
    for classes in SCENARIO_USERS.values():
        for name in classes:
            assert f"class {name}(" in text


def test_local_workers_reach_the_master_where_it_listens() -> None:
    from loadtests.config import RunConfig
    from loadtests.run import locust_commands

    def master_host(bind: str) -> str:
        _, workers = locust_commands(RunConfig(master_bind=bind), 5557, Path("x"))
        return workers[0][workers[0].index("--master-host") + 1]

    assert master_host("10.77.1.15") == "10.77.1.15"  # a simulated host's address
    assert master_host("0.0.0.0") == "127.0.0.1"  # noqa: S104
    assert master_host("127.0.0.1") == "127.0.0.1"
