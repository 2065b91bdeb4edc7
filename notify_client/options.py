"""The target options every tool takes, on the command line or in one TOML target file.

    [target]
    url = "http://127.0.0.1:8000"
    jwt_secret = "..."            # or token_cmd = "mint {user} {role}"
    driver_cmd = "python publish.py"
    without = ["sse", "tasks"]    # parts of the API this server does not have
    heartbeat_interval = 30

A command-line option wins over the file; the file wins over the contract's defaults.
"""

from __future__ import annotations

import argparse
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from notify_client.target import HEADER, QUERY, CommandTokens, Target, TokenSource
from notify_contract.settings import DEFAULTS, JWT_ALGORITHMS, Limits
from notify_contract.tokens import Minter
from notify_contract.verdicts import FEATURES, Need


class OptionError(ValueError):
    """A bad option or target file; the message names it."""


@dataclass(frozen=True)
class Option:
    name: str  # the dest and the TOML key
    kind: type
    default: Any
    help: str
    metavar: str | None = None


OPTIONS = (
    Option("url", str, None, "base URL of the server (http://host:port[/prefix])", "URL"),
    Option("jwt_secret", str, None, "the target's JWT_SECRET: the tools mint tokens"),
    Option("jwt_alg", str, "HS256", f"the target's JWT_ALGORITHM ({', '.join(JWT_ALGORITHMS)})"),
    Option(
        "token_cmd",
        str,
        None,
        "command printing a token, with {user} and {role} (user|admin) filled in",
        "CMD",
    ),
    Option(
        "driver_cmd",
        str,
        None,
        'command that publishes: {"action": ...} JSON on stdin, JSON out; exit 3: unsupported',
        "CMD",
    ),
    Option("token_in", str, "query", "where streams carry the token: query or header", "WHERE"),
    Option(
        "without",
        list,
        [],
        f"parts of the API the target lacks: {', '.join(f.value for f in FEATURES)} "
        "(comma-separated; their cases are 'not run')",
        "PARTS",
    ),
    Option("heartbeat_interval", float, DEFAULTS.heartbeat_interval, "WS_HEARTBEAT_INTERVAL", "S"),
    Option(
        "max_connections_per_user",
        int,
        DEFAULTS.max_connections_per_user,
        "WS_MAX_CONNECTIONS_PER_USER",
        "N",
    ),
    Option("max_message_bytes", int, DEFAULTS.max_message_bytes, "WS_MAX_MESSAGE_BYTES", "N"),
    Option("client_rate", int, DEFAULTS.client_rate, "WS_CLIENT_RATE", "N"),
    Option("history_size", int, DEFAULTS.history_size, "WS_HISTORY_SIZE", "N"),
    Option("stats_public", bool, False, "WS_STATS_PUBLIC is true"),
    Option("allowed_origin", str, None, "an Origin the target allows (WS_ALLOWED_ORIGINS)", "URL"),
    Option("logs", list, [], "a log of the server or its proxy, checked for tokens", "PATH"),
    Option("idle_hold", float, None, "how long to hold an idle stream (default 2.5 heartbeats)"),
    Option("frame_timeout", float, 5.0, "how long to wait for an expected frame", "S"),
)
BY_NAME = {o.name: o for o in OPTIONS}


def add_target_arguments(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """`--target URL`, `--target-file FILE` and every option of OPTIONS (default: unset), but
    those in `skip` (a tool whose own option has that name; the file may still set them)."""
    group = parser.add_argument_group("the target (a command-line option wins over the file)")
    group.add_argument("--target-file", type=Path, metavar="FILE", help="a TOML target file")
    for o in OPTIONS:
        if o.name in skip:
            continue
        flag = flag_of(o)
        if o.kind is bool:
            group.add_argument(flag, dest=o.name, action="store_const", const=True, help=o.help)
        elif o.name == "logs":
            group.add_argument(
                "--log", dest="logs", action="append", metavar=o.metavar, help=o.help
            )
        else:
            group.add_argument(flag, dest=o.name, metavar=o.metavar, help=o.help)


def _convert(option: Option, value: Any, where: str) -> Any:
    if value is None:
        return None
    try:
        if option.kind is list:
            items = value.split(",") if isinstance(value, str) else list(value)
            return [str(i).strip() for i in items if str(i).strip()]
        if option.kind is bool:
            if not isinstance(value, bool):
                raise TypeError("not true or false")
            return value
        return option.kind(value)
    except (TypeError, ValueError) as exc:
        raise OptionError(
            f"{where}: {option.name} = {value!r} is not a {option.kind.__name__}: {exc}"
        ) from None


FILE_KEYS = {"log": "logs"}  # a file key named as its flag (--log), where the dest differs


def flag_of(option: Option) -> str:
    """The command-line flag of a target option."""
    if option.name == "url":
        return "--target"
    if option.name == "logs":
        return "--log"
    return "--" + option.name.replace("_", "-")


def read_target_file(path: Path) -> dict[str, Any]:
    """The [target] table of a TOML file, converted; unknown keys are an error naming them."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise OptionError(f"--target-file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise OptionError(f"--target-file {path}: not TOML: {exc}") from None
    table = data.get("target", data)
    # Keys are the flags' names; `logs` (the dest) is still read.
    table = {FILE_KEYS.get(k, k): v for k, v in table.items()}
    unknown = sorted(set(table) - set(BY_NAME))
    if unknown:
        raise OptionError(
            f"--target-file {path}: unknown key(s) {', '.join(unknown)}; known: "
            f"{', '.join(BY_NAME)}"
        )
    return {k: _convert(BY_NAME[k], v, str(path)) for k, v in table.items()}


def resolve(args: argparse.Namespace, fallback_secret: str | None = None) -> Target:
    """The target: every option from the command line, else the target file, else its default
    (`fallback_secret` for a secret when no token source is given). Checked; its `url` is None
    when the tool is to start the reference stack."""
    from_file = read_target_file(args.target_file) if args.target_file else {}
    values = {}
    for o in OPTIONS:
        cli = _convert(o, getattr(args, o.name, None), f"--{o.name.replace('_', '-')}")
        values[o.name] = cli if cli is not None else from_file.get(o.name, o.default)
    if values["jwt_secret"] and values["token_cmd"]:
        raise OptionError("give --jwt-secret or --token-cmd, not both")
    if not (values["jwt_secret"] or values["token_cmd"]) and fallback_secret:
        values["jwt_secret"] = fallback_secret
    if values["jwt_alg"] not in JWT_ALGORITHMS:
        raise OptionError(f"--jwt-alg {values['jwt_alg']!r}: one of {', '.join(JWT_ALGORITHMS)}")
    if values["token_in"] not in (QUERY, HEADER):
        raise OptionError(f"--token-in {values['token_in']!r}: {QUERY} or {HEADER}")
    known = {f.value for f in FEATURES}
    bad = [w for w in values["without"] if w not in known]
    if bad:
        raise OptionError(f"--without {','.join(bad)}: known parts are {', '.join(sorted(known))}")
    url = values["url"]
    if url is not None and urlsplit(url).scheme not in ("http", "https"):
        raise OptionError(f"--target must be an http:// or https:// URL, not {url!r}")
    return _target(values)


def _target(values: dict[str, Any]) -> Target:
    tokens: TokenSource | None = None
    if values["jwt_secret"]:
        tokens = Minter(values["jwt_secret"], values["jwt_alg"])
    elif values["token_cmd"]:
        tokens = CommandTokens(values["token_cmd"])
    limits = Limits(
        heartbeat_interval=values["heartbeat_interval"],
        max_connections_per_user=values["max_connections_per_user"],
        max_message_bytes=values["max_message_bytes"],
        client_rate=values["client_rate"],
        history_size=values["history_size"],
    )
    return Target(
        values["url"],
        tokens=tokens,
        driver_cmd=values["driver_cmd"],
        token_in=values["token_in"],
        without=frozenset(Need(w) for w in values["without"]),
        limits=limits,
        stats_public=values["stats_public"],
        allowed_origin=values["allowed_origin"],
        logs=tuple(Path(p) for p in values["logs"]),
        idle_hold=values["idle_hold"],
        frame_timeout=values["frame_timeout"],
        given=tuple(flag_of(o) for o in OPTIONS if values[o.name] not in (o.default, None, [], ())),
    )
