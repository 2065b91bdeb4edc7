"""The cases of the contract suite, one module per part of docs/contract.md; importing registers."""

from contract_tests.cases import behaviour, endpoints, frames, security, sse, stats, tasks, tokens

__all__ = ["behaviour", "endpoints", "frames", "security", "sse", "stats", "tasks", "tokens"]
