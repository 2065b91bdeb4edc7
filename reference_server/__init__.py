"""Reference WebSocket notification server: every clause of CONTRACT.md."""
