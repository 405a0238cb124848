"""Exact money: integer pico-USD inside, decimal strings outside."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

PICO_PER_USD = 10**12
_PICO = Decimal(PICO_PER_USD)


def usd_to_pico(value: Decimal | int | str) -> int:
    """Convert USD to pico-USD; sub-pico fractions round half-up (never silently floats)."""
    amount = Decimal(value) * _PICO
    if not amount.is_finite():  # NaN and Infinity are no amount of money
        raise InvalidOperation(f"not a finite amount: {value!r}")
    return int(amount.to_integral_value(rounding="ROUND_HALF_UP"))


def pico_to_usd(pico: int) -> Decimal:
    return (Decimal(pico) / _PICO).normalize() if pico else Decimal(0)


def pico_to_str(pico: int) -> str:
    """Render pico-USD as a plain decimal string (no exponent), e.g. ``"0.00042"``."""
    usd = pico_to_usd(pico)
    text = format(usd, "f")
    return text
