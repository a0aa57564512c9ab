"""Exact money: integers in minor units inside the domain, ``Decimal`` only at the ledger edge."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

# ISO 4217 exponents that differ from 2. Every other currency has two decimals.
_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    **dict.fromkeys(["CLF", "UYW"], 4),
}


def _currency(value: str) -> str:
    code = value.strip().upper()
    if len(code) != 3 or not code.isalpha():
        raise ValueError("not an ISO 4217 currency code")
    return code


Currency = Annotated[str, AfterValidator(_currency)]


def exponent(currency: str) -> int:
    """Number of decimals of ``currency`` (JPY 0, USD 2, KWD 3)."""
    return _EXPONENTS.get(_currency(currency), 2)


class Money(BaseModel):
    """An amount in minor units of one currency. Arithmetic refuses to mix currencies."""

    model_config = ConfigDict(frozen=True)

    minor: int
    currency: Currency

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(minor=0, currency=currency)

    @classmethod
    def from_decimal(cls, amount: Decimal, currency: str) -> Money:
        """Converts a ledger decimal; refuses sub-minor precision instead of rounding it away."""
        scaled = amount.scaleb(exponent(currency))
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{amount} has more decimals than {_currency(currency)} allows")
        return cls(minor=int(scaled), currency=currency)

    def to_decimal(self) -> Decimal:
        return (
            Decimal(self.minor)
            .scaleb(-exponent(self.currency))
            .quantize(Decimal(1).scaleb(-exponent(self.currency)))
        )

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValueError(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(minor=self.minor + other.minor, currency=self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(minor=self.minor - other.minor, currency=self.currency)

    def __neg__(self) -> Money:
        return Money(minor=-self.minor, currency=self.currency)

    def __str__(self) -> str:
        return f"{self.to_decimal()} {self.currency}"


def quantize(amount: Decimal, currency: str) -> Decimal:
    """Rounds half-up to the currency's minor unit, as ledgers do for a line amount."""
    return amount.quantize(Decimal(1).scaleb(-exponent(currency)), rounding=ROUND_HALF_UP)


def total(amounts: list[Money], currency: str) -> Money:
    result = Money.zero(currency)
    for amount in amounts:
        result = result + amount
    return result
