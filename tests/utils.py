"""Plain helpers the tests share (fixtures stay in conftest)."""

from __future__ import annotations

from prometheus_client import REGISTRY


def metric(name: str, **labels: str) -> float:
    """The value of one of this process's Prometheus samples now; 0 before its first count."""
    return REGISTRY.get_sample_value(name, labels) or 0.0
