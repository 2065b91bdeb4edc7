"""The fault and hostile-input suite: real processes, injected failures, a reliability table."""
