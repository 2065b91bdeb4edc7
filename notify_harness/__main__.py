"""`python -m notify_harness` is `notify-harness`."""

from __future__ import annotations

from notify_harness.cli import main

raise SystemExit(main())
