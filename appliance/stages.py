"""Stages and their ports, compatible with ps.basic clients and the old ps_bridge/ps_herald.

Every process and `appliance init` take their default ports from this one table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    name: str
    suffix: str
    ingest_port: int
    web_port: int
    upstream_port: int


STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage("TESTING", "_t", 9010, 9011, 9011),
        Stage("DEVELOPMENT", "_d", 9020, 9021, 9019),
        Stage("INTEGRATION", "_i", 9022, 9023, 9018),
        Stage("PRODUCTION", "", 9024, 9025, 9017),
    )
}

# ps.basic spells stages in short forms as well; accept them all.
ALIASES = {"TEST": "TESTING", "DEV": "DEVELOPMENT", "DEV_STAGE": "DEVELOPMENT",
           "INT": "INTEGRATION", "PROD": "PRODUCTION"}


def stage_named(text: str) -> Stage:
    """The stage called `text` (case-insensitive, ps.basic aliases allowed)."""
    name = text.strip().upper()
    name = ALIASES.get(name, name)
    try:
        return STAGES[name]
    except KeyError:
        raise ValueError(
            f"unknown stage {text!r}; expected one of {', '.join(STAGES)}") from None
