"""The server under test, as every tool sees it: built once from the command line and the
target file (`notify_client.options.resolve`) and handed to the contract suite, the load and
fault tools and `notify-harness token` alike, so no tool reads an option another one drops."""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from notify_contract.settings import DEFAULTS, Limits
from notify_contract.tokens import Minter
from notify_contract.verdicts import Need, NotRun

QUERY, HEADER = "query", "header"  # where a stream carries its token
HOLD_BEATS = 2.5  # an idle stream is held this many heartbeats to see that it survives


class TokenSource(Protocol):
    """Where a judge's tokens come from: a key (Minter), a command, or the user's own object."""

    def mint(self, user: str, *, admin: bool = False, ttl: float | None = None) -> str: ...


class CommandTokens:
    """Tokens printed by the user's command (`--token-cmd 'CMD {user} {role}'`)."""

    def __init__(self, template: str) -> None:
        self.template = template
        self._cache: dict[tuple[str, bool], str] = {}

    def mint(self, user: str, *, admin: bool = False, ttl: float | None = None) -> str:
        if ttl is not None:
            raise NotRun("a token with a chosen lifetime needs --jwt-secret (--token-cmd given)")
        key = (user, admin)
        if key not in self._cache:
            command = self.template.format(
                user=shlex.quote(user), role="admin" if admin else "user"
            )
            proc = subprocess.run(  # noqa: S602 - the user asked for a shell command
                command,
                shell=True,
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            token = proc.stdout.strip()
            if proc.returncode != 0 or not token:
                raise NotRun(
                    f"--token-cmd failed for {user!r} (exit {proc.returncode}): "
                    f"{proc.stderr.strip()[-200:]}"
                )
            self._cache[key] = token
        return self._cache[key]


@dataclass(frozen=True)
class Target:
    """A server under test and what the judges know of it; `url` None: the tool starts the
    reference stack and points copies of this object at it (`at`)."""

    url: str | None
    label: str = "target"
    tokens: TokenSource | None = None
    driver_cmd: str | None = None
    token_in: str = QUERY
    without: frozenset[Need] = frozenset()  # parts of the API the target declares it lacks
    limits: Limits = DEFAULTS  # its settings, as the contract names them
    stats_public: bool = False
    allowed_origin: str | None = None
    logs: tuple[Path, ...] = ()
    idle_hold: float | None = None
    frame_timeout: float = 5.0
    # The flags the user set to something other than the default, for a tool to name those it
    # does not act on.
    given: tuple[str, ...] = field(default=(), compare=False)

    @property
    def base(self) -> str:
        """The URL; asking for it before there is one is a bug of the tool, not of the user."""
        if self.url is None:
            raise ValueError(f"target {self.label!r} has no URL yet (the stack is not started)")
        return self.url

    @property
    def hold(self) -> float:
        """How long an idle stream is held to see that it survives (2.5 heartbeats)."""
        if self.idle_hold is not None:
            return self.idle_hold
        return HOLD_BEATS * self.limits.heartbeat_interval

    @property
    def minter(self) -> Minter | None:
        """The key, when the user gave one: tokens with chosen claims, thousands of users."""
        return self.tokens if isinstance(self.tokens, Minter) else None

    def at(self, url: str, label: str, **changes: Any) -> Target:
        """This target's declarations, pointed at `url` (a stack the tool started)."""
        return replace(self, url=url, label=label, **changes)

    def lacks(self, part: Need) -> bool:
        return part in self.without
