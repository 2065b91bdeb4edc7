"""The client check: a page's notification client, run in real Chromium, judged by section 7 of
docs/contract.md (reconnect policy, resume, watchdog, one socket) from its sockets alone."""
