"""The dated AWS price table (``infra/aws_prices.toml``) that ``bench/cost.py`` prices with.

Each entry is ``[service.item]`` with ``value`` (a non-negative number), ``unit``, ``source``
and ``taken`` (a date); ``[meta]`` names the region, the currency and the date the table was
taken. The loader refuses an entry that lacks any of them, so no price enters a figure without
saying where it came from and when.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

DEFAULT_TABLE = Path(__file__).resolve().parents[1] / "infra" / "aws_prices.toml"
REQUIRED = ("value", "unit", "source", "taken")


class PriceTableError(ValueError):
    """The price table is missing something or holds a value that cannot be a price."""


@dataclass(frozen=True)
class Price:
    service: str
    item: str
    value: float
    unit: str
    source: str
    taken: date
    notes: str = ""

    @property
    def found_in_corpus(self) -> bool:
        """False where the table says the value rests on memory, not on a page it cites."""
        return not self.source.lower().startswith("not found")


@dataclass(frozen=True)
class PriceTable:
    region: str
    currency: str
    taken: date
    prices: dict[str, Price]

    def __getitem__(self, key: str) -> float:
        """The value of ``"service.item"``, e.g. ``table["lambda.request"]``."""
        try:
            return self.prices[key].value
        except KeyError:
            raise KeyError(f"the price table has no {key!r}") from None

    def unsourced(self) -> list[str]:
        return [key for key, price in self.prices.items() if not price.found_in_corpus]


def _price(service: str, item: str, entry: Any) -> Price:
    where = f"[{service}.{item}]"
    if not isinstance(entry, dict):
        raise PriceTableError(f"{where} must be a table with {', '.join(REQUIRED)}")
    missing = [name for name in REQUIRED if name not in entry]
    if missing:
        raise PriceTableError(f"{where} lacks {', '.join(missing)}")
    value = entry["value"]
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise PriceTableError(f"{where} value must be a non-negative number, not {value!r}")
    for name in ("unit", "source"):
        if not isinstance(entry[name], str) or not entry[name].strip():
            raise PriceTableError(f"{where} {name} must be a non-empty string")
    if not isinstance(entry["taken"], date):
        raise PriceTableError(f"{where} taken must be a date (YYYY-MM-DD), not {entry['taken']!r}")
    return Price(
        service=service,
        item=item,
        value=float(value),
        unit=entry["unit"],
        source=entry["source"],
        taken=entry["taken"],
        notes=str(entry.get("notes", "")),
    )


def parse(text: str) -> PriceTable:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PriceTableError(f"not valid TOML: {exc}") from None
    meta = document.pop("meta", None)
    if not isinstance(meta, dict) or not {"region", "currency", "taken"} <= meta.keys():
        raise PriceTableError("[meta] must give region, currency and taken")
    if not isinstance(meta["taken"], date):
        raise PriceTableError("[meta] taken must be a date (YYYY-MM-DD)")
    prices: dict[str, Price] = {}
    for service, items in document.items():
        if not isinstance(items, dict) or not items:
            raise PriceTableError(f"[{service}] must hold [{service}.item] entries")
        for item, entry in items.items():
            prices[f"{service}.{item}"] = _price(service, item, entry)
    return PriceTable(
        region=str(meta["region"]), currency=str(meta["currency"]), taken=meta["taken"], prices=prices
    )


def load(path: Path = DEFAULT_TABLE) -> PriceTable:
    return parse(path.read_text(encoding="utf-8"))
