"""The toolkit's one command line, `notify-harness` (see `notify_harness.cli`)."""
