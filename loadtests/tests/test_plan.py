"""The sizing plan: hosts per tier from measured costs, the limit that decided, and "not
measured" for a tier no run measured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtests.config import port_range
from loadtests.figures import Figures
from loadtests.plan import (
    Host,
    Load,
    Tier,
    main,
    merged,
    newest_committed,
    plan,
    read,
    source_addresses,
)

COSTS = Figures(
    cpu_us_per_delivered=25.0,
    mem_per_conn_kb=16.0,
    nginx_cpu_us_per_delivered=10.0,
    nginx_mem_per_conn_kb=8.0,
    generator_cpu_us_per_received=30.0,
    generator_mem_per_conn_kb=28.0,
)
HOST = Host(cores=2, mem_gb=24.0, fds_per_process=20_000, headroom=0.5)


def by_name(load: Load, figures: Figures = COSTS, host: Host = HOST) -> dict[str, Tier]:
    return {t.name: t for t in plan(load, figures, host)}


def test_cpu_decides_when_broadcasts_are_frequent() -> None:
    # 100k streams x 1 broadcast/s = 100k deliveries/s x 25 us = 2.5 cores; a host gives 1.
    servers = by_name(Load(100_000, 1.0))["servers"]
    assert (servers.hosts, servers.decided_by) == (3, "CPU")
    assert servers.cores == pytest.approx(2.5)


def test_descriptors_decide_when_streams_are_many_and_quiet() -> None:
    # 1M streams, nginx 2 descriptors each: 2M over 2 x 19,800 a host = 51 hosts.
    nginx = by_name(Load(1_000_000, 0.001))["nginx"]
    assert (nginx.hosts, nginx.decided_by) == (51, "descriptors")


def test_memory_decides_on_small_hosts() -> None:
    small = Host(cores=16, mem_gb=1.0, fds_per_process=1_000_000, headroom=0.5)
    generator = by_name(Load(100_000, 0.001), host=small)["generator"]
    # 100k x 28 KB = 2.67 GB over 0.5 GB a host
    assert (generator.hosts, generator.decided_by) == (6, "memory")


def test_a_tier_no_run_measured_is_not_measured_never_zero_hosts() -> None:
    nginx = by_name(Load(1000, 1.0), Figures(cpu_us_per_delivered=25.0, mem_per_conn_kb=16.0))
    assert (nginx["nginx"].hosts, nginx["nginx"].decided_by) == (None, "not measured")
    assert nginx["servers"].hosts == 1


def test_each_cost_comes_from_the_last_run_that_measured_it() -> None:
    got = merged([COSTS, Figures(redis_cpu_us_per_published=50.0, cpu_us_per_delivered=20.0)])
    assert (got.cpu_us_per_delivered, got.redis_cpu_us_per_published) == (20.0, 50.0)
    assert got.mem_per_conn_kb == 16.0


def test_the_command_reads_a_run_folder_and_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "fanout-20990101T000000Z"
    run.mkdir()
    summary = {"figures": COSTS.to_dict(), "environment": {"git_commit": "abcdef123"}}
    (run / "summary.json").write_text(json.dumps(summary))
    assert main(["--streams", "1000000", "--broadcasts-per-s", "0.1", "--from", str(run)]) == 0
    out = capsys.readouterr().out
    assert "costs from: fanout-20990101T000000Z (abcdef1)" in out
    assert "redis      not sized: no source run had Redis" in out
    assert read(run)[0] == COSTS


def test_bad_input_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--streams", "10", "--broadcasts-per-s", "1", "--from", str(tmp_path / "none")])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        main(["--streams", "0", "--broadcasts-per-s", "1"])


def test_the_newest_committed_run_of_a_number_of_servers() -> None:
    two = newest_committed(instances=2)
    assert two is not None
    assert json.loads(two.read_text())["config"]["instances"] == 2
    assert newest_committed(instances=99) is None


def test_without_a_run_given_the_newest_committed_one_is_read() -> None:
    newest = newest_committed()
    assert newest is not None and newest.parent.name.startswith("fanout-")
    assert read(newest)[0].cpu_us_per_delivered is not None
    assert not json.loads(newest.read_text())["config"]["server_settings"]


def test_source_addresses_cover_the_streams_per_entry_address() -> None:
    assert source_addresses(Load(port_range() + 1, 1.0), 1) == 2
    assert source_addresses(Load(port_range() + 1, 1.0), 2) == 1
