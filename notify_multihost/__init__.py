"""Simulated hosts: the stack and the generator over network namespaces (`nox -s multihost`)."""
