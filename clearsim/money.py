"""Exact money: amounts are integer fen (分), ratios exact fractions, rounding half-up.

Every amount the simulator computes is an ``int`` of fen. Amounts enter and leave as
decimal strings with at most two decimals ("12000.00"); ratios and shares ("0.50", "0.10")
are kept as exact fractions of integers so ``fen × ratio`` is rounded half-up to the fen
once, with no float anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from clearsim.errors import ClearsimError, ErrorCode

FEN_PER_YUAN = 100
_CENT = Decimal("0.01")


def parse_fen(text: object, field: str = "amount", *, allow_negative: bool = False) -> int:
    """Parse a decimal amount in yuan ("12000.00", "5", 12000) into integer fen.

    Refuses floats (they are not exact), more than two decimals, NaN/infinity and, unless
    allowed, negative amounts.
    """
    if isinstance(text, bool) or isinstance(text, float):
        raise ClearsimError(ErrorCode.INVALID_AMOUNT,
                            f"amount {text!r} must be a decimal string such as \"12.50\", not a float",
                            field)
    if isinstance(text, int):
        value = Decimal(text)
    elif isinstance(text, Decimal):
        value = text
    elif isinstance(text, str):
        try:
            value = Decimal(text.strip())
        except InvalidOperation:
            raise ClearsimError(ErrorCode.INVALID_AMOUNT,
                                f"amount {text!r} is not a decimal number", field) from None
    else:
        raise ClearsimError(ErrorCode.INVALID_AMOUNT,
                            f"amount {text!r} is not a decimal string", field)
    if not value.is_finite():
        raise ClearsimError(ErrorCode.INVALID_AMOUNT, f"amount {text!r} is not finite", field)
    if value != value.quantize(_CENT):
        raise ClearsimError(ErrorCode.INVALID_AMOUNT,
                            f"amount {text!r} has more than two decimals (fen)", field)
    if value < 0 and not allow_negative:
        raise ClearsimError(ErrorCode.INVALID_AMOUNT, f"amount {text!r} is negative", field)
    return int(value * FEN_PER_YUAN)


def format_fen(fen: int) -> str:
    """12050.00-style string with exactly two decimals."""
    sign = "-" if fen < 0 else ""
    whole, part = divmod(abs(fen), FEN_PER_YUAN)
    return f"{sign}{whole}.{part:02d}"


def fen_to_decimal(fen: int) -> Decimal:
    return (Decimal(fen) / FEN_PER_YUAN).quantize(_CENT)


def decimal_to_fen(value: Decimal) -> int:
    """A Decimal with at most two decimals (as Avro's decimal logical type gives) to fen."""
    return parse_fen(value, allow_negative=True)


@dataclass(frozen=True, slots=True)
class Ratio:
    """An exact ratio num/den with 0 <= num/den; built from a decimal string."""

    num: int
    den: int

    @classmethod
    def parse(cls, text: object, field: str = "ratio", *, at_most_one: bool = True) -> "Ratio":
        if isinstance(text, (float, bool)) or not isinstance(text, (str, int, Decimal)):
            raise ClearsimError(ErrorCode.INVALID_INPUT,
                                f"ratio {text!r} must be a decimal string such as \"0.50\"", field)
        try:
            value = Decimal(str(text).strip())
        except InvalidOperation:
            raise ClearsimError(ErrorCode.INVALID_INPUT,
                                f"ratio {text!r} is not a decimal number", field) from None
        if not value.is_finite() or value < 0 or (at_most_one and value > 1):
            bounds = "lie between 0 and 1" if at_most_one else "be a number not below 0"
            raise ClearsimError(ErrorCode.INVALID_INPUT, f"{text!r} must {bounds}", field)
        num, den = value.as_integer_ratio()
        return cls(num, den)

    def apply(self, fen: int) -> int:
        """round_half_up(fen × ratio), for fen >= 0."""
        if fen < 0:
            raise ValueError("Ratio.apply is defined for non-negative amounts")
        return (2 * fen * self.num + self.den) // (2 * self.den)

    def as_decimal(self) -> Decimal:
        return Decimal(self.num) / Decimal(self.den)

    def __str__(self) -> str:
        value = self.as_decimal()
        text = format(value.normalize(), "f")
        if "." not in text:
            text += ".00"
        whole, frac = text.split(".")
        return f"{whole}.{frac.ljust(2, '0')}"


# The largest amount clearsim carries, in a message or a sum of them: 100 billion yuan, more
# than every cross-region inpatient charge of the whole country in a year (64.82 billion
# yuan in 2019, DOMAIN.md §7). The wire's decimal(18,2) could carry a hundred thousand
# times more; nothing real comes close, and a node refuses more as absurd. The claims and
# scenario loaders hold inputs to it too, so `settle` and `run` accept the same inputs.
MAX_FEN = 100_000_000_000 * 100
