"""Capacity runs: locust through nginx, resource sampling, reports with plots."""
