"""Shared helpers for unit tests: the Stripe event fixtures, read as the raw bytes a webhook carries."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

STRIPE_EVENTS = Path(__file__).resolve().parents[1] / "events" / "stripe"


def _find(prefix: str) -> Path:
    matches = sorted(STRIPE_EVENTS.glob(f"{prefix}_*.json"))
    assert len(matches) == 1, f"expected one fixture for {prefix}, found {matches}"
    return matches[0]


@pytest.fixture
def raw_event() -> Callable[[str], bytes]:
    """``raw_event("a1")`` -> the fixture's bytes, exactly as Stripe would POST them."""
    return lambda prefix: _find(prefix).read_bytes()


@pytest.fixture
def event_dict() -> Callable[[str], dict[str, Any]]:
    """``event_dict("a1")`` -> a fresh, mutable copy of the fixture's JSON."""

    def load(prefix: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(_find(prefix).read_bytes())
        return data

    return load
