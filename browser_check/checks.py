"""Every client check, in report order: each plays the server for one page and judges what its
sockets did by one rule of section 7 (declared in the modules below, `registry.py` says how)."""

from __future__ import annotations

from browser_check import reconnect_checks, resume_checks, socket_checks
from browser_check.registry import CHECKS, ClientCheck, LiveServer, Options, Requires

MODULES = (reconnect_checks, resume_checks, socket_checks)  # imported for their `@check`s
__all__ = ["CHECKS", "MODULES", "ClientCheck", "LiveServer", "Options", "Requires"]
