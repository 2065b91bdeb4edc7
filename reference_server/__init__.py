"""Reference WebSocket notification server: every clause of docs/contract.md."""
