"""Probe registry: stable dotted ids -> probe classes. Filled at import of ``probes``."""

from __future__ import annotations

import re

from probes.base import Probe

_PROBE_ID = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_REGISTRY: dict[str, type[Probe]] = {}


def register(cls: type[Probe]) -> type[Probe]:
    """Class decorator. Ids are dotted lower_snake_case and unique."""
    if not _PROBE_ID.match(cls.id):
        raise ValueError(f"probe id {cls.id!r} must be dotted lower_snake_case, e.g. 'toxicity.continuation'")
    if cls.id in _REGISTRY and _REGISTRY[cls.id] is not cls:
        raise ValueError(f"probe id {cls.id!r} registered twice")
    _REGISTRY[cls.id] = cls
    return cls


def all_probes() -> dict[str, type[Probe]]:
    """Every registered probe, by id, sorted."""
    return dict(sorted(_REGISTRY.items()))


def get_probe(probe_id: str) -> type[Probe]:
    try:
        return _REGISTRY[probe_id]
    except KeyError:
        raise KeyError(probe_id) from None
