"""Money: integers in minor units, exact conversions at the ledger edge, one currency at a time."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from invoice_sync.models.money import Money, exponent, quantize, total


@pytest.mark.parametrize(
    ("currency", "expected"),
    [("JPY", 0), ("USD", 2), ("EUR", 2), ("KWD", 3), ("jpy", 0), (" kwd ", 3)],
)
def test_exponent_follows_iso_4217(currency: str, expected: int) -> None:
    """Given a currency code (any case), exponent() returns its ISO 4217 number of decimals."""
    assert exponent(currency) == expected


@pytest.mark.parametrize("code", ["US", "USDX", "U1D", ""])
def test_currency_code_must_be_three_letters(code: str) -> None:
    """Given a malformed currency code, Money refuses it."""
    with pytest.raises(ValidationError):
        Money(minor=1, currency=code)


def test_currency_is_normalised_to_upper_case() -> None:
    """Given a lower-case code, Money stores it upper-cased."""
    assert Money(minor=1, currency="usd").currency == "USD"


@pytest.mark.parametrize(
    ("minor", "currency", "expected"),
    [
        (15010, "USD", "150.10"),
        (-15010, "USD", "-150.10"),
        (0, "USD", "0.00"),
        (12000, "JPY", "12000"),
        (1234, "KWD", "1.234"),
        (5, "KWD", "0.005"),
    ],
)
def test_to_decimal_has_exactly_the_currency_decimals(minor: int, currency: str, expected: str) -> None:
    """Given minor units, to_decimal gives a Decimal with the currency's exponent (trailing zeros kept)."""
    value = Money(minor=minor, currency=currency).to_decimal()
    assert str(value) == expected
    assert value.as_tuple().exponent == -exponent(currency)


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        (Decimal("150.10"), "USD", 15010),
        (Decimal("150.1"), "USD", 15010),
        (Decimal("-0.01"), "USD", -1),
        (Decimal("12000"), "JPY", 12000),
        (Decimal("1.234"), "KWD", 1234),
    ],
)
def test_from_decimal_is_exact(amount: Decimal, currency: str, minor: int) -> None:
    """Given a ledger Decimal within the currency's precision, from_decimal gives the exact minor units."""
    money = Money.from_decimal(amount, currency)
    assert money.minor == minor
    assert Money(minor=minor, currency=currency).to_decimal() == amount


@pytest.mark.parametrize(
    ("amount", "currency"),
    [(Decimal("150.105"), "USD"), (Decimal("1.5"), "JPY"), (Decimal("0.0001"), "KWD")],
)
def test_from_decimal_refuses_sub_minor_precision(amount: Decimal, currency: str) -> None:
    """Given more decimals than the currency allows, from_decimal raises instead of rounding."""
    with pytest.raises(ValueError, match="more decimals"):
        Money.from_decimal(amount, currency)


def test_arithmetic_within_one_currency() -> None:
    """Given two USD amounts, +, - and unary - work on minor units."""
    a = Money(minor=1000, currency="USD")
    b = Money(minor=250, currency="USD")
    assert (a + b).minor == 1250
    assert (a - b).minor == 750
    assert (-a).minor == -1000
    assert total([a, b, b], "USD") == Money(minor=1500, currency="USD")
    assert str(a) == "10.00 USD"


def test_mixing_currencies_is_refused() -> None:
    """Given USD and EUR, adding or subtracting raises rather than producing a meaningless sum."""
    usd = Money(minor=100, currency="USD")
    eur = Money(minor=100, currency="EUR")
    with pytest.raises(ValueError, match="cannot combine USD with EUR"):
        _ = usd + eur
    with pytest.raises(ValueError, match="cannot combine"):
        _ = usd - eur
    with pytest.raises(ValueError, match="cannot combine"):
        total([usd, eur], "USD")


def test_money_is_immutable() -> None:
    """Given a Money, its fields cannot be reassigned."""
    money = Money(minor=1, currency="USD")
    with pytest.raises(ValidationError):
        money.minor = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (Decimal("0.125"), "USD", "0.13"),
        (Decimal("0.124"), "USD", "0.12"),
        (Decimal("-0.125"), "USD", "-0.13"),
        (Decimal("2.5"), "JPY", "3"),
        (Decimal("1.2345"), "KWD", "1.235"),
        (Decimal("12375.00"), "USD", "12375.00"),
    ],
)
def test_quantize_rounds_half_up_to_the_minor_unit(amount: Decimal, currency: str, expected: str) -> None:
    """Given an amount with extra decimals, quantize rounds half away from zero to the minor unit."""
    assert str(quantize(amount, currency)) == expected
