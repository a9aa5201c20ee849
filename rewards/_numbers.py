"""Exact parsing of plain numbers written in any common notation.

Numbers are compared as exact rationals (``fractions.Fraction``), never with a float
tolerance: ``0.1`` and ``0.1000001`` are different answers. A decimal never equals a
non-terminating value it rounds (``0.333`` for ``1/3``) unless the gold is the decimal and
the response the exact value; a relative tolerance is opt-in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

# Separators people put between groups of three digits: space, no-break / thin spaces,
# LaTeX thin spaces and braces around a comma, apostrophe (Swiss), plain comma.
_GROUP_SEP = r"(?:,|\{,\}|\\,|\\ |\\;|\\!|~|'|[ \u00a0\u2009\u202f])"
_THOUSANDS_RE = re.compile(rf"^([1-9]\d{{0,2}})((?:{_GROUP_SEP}\d{{3}})+)(\.\d+)?$")
_DECIMAL_RE = re.compile(r"^(\d*)\.(\d+)$|^(\d+)\.?$")
_DECIMAL_COMMA_RE = re.compile(r"^(\d+)(?:,|\{,\})(\d+)$")
# A comma that cannot group thousands: after a 0, or before 2 or 4+ digits (1,22; 0,5).
# One digit after it (1,2) is read as a list of two numbers.
_PLAIN_DECIMAL_COMMA_RE = re.compile(r"^(0),(\d+)$|^(\d+),(\d{2}|\d{4,})$")
_FRAC_RE = re.compile(r"^\\[dt]?frac\{([^{}]+)\}\{([^{}]+)\}$|^\\[dt]?frac(\d)(\d)$")
_SLASH_RE = re.compile(r"^(\d+)\s*/\s*(\d+)$")
_MIXED_RE = re.compile(
    r"^(\d+)\s*(?:\\ |~|\\,)?\s*(\\[dt]?frac\{\d+\}\{\d+\}|\\[dt]?frac\d\d|\d+/\d+)$"
)
_SCI_E_RE = re.compile(r"^([\d.]+)[eE]([+-]?\d{1,4})$")
_SCI_TIMES_RE = re.compile(
    r"^([\d.]+)\s*(?:\\times|\\cdot|\*|×|x|·)\s*10\s*\^\s*\{?\s*([+-]?\d{1,4})\s*\}?$"
)
_POW10_RE = re.compile(r"^10\s*\^\s*\{?\s*([+-]?\d{1,4})\s*\}?$")
_DEGREE_RE = re.compile(
    r"(?:\^\s*\{?\s*\\circ\s*\}?|°|\\degree|\\circ|\s*\\text\{\s*degrees?\s*\}|\s+degrees?)$"
)
_PERCENT_RE = re.compile(
    r"(?:\\%|%|\s*\\text\{\s*(?:percent|pct)\s*\}|\s*(?:percentage|percent|pct))$"
)
_UNIT_RE = re.compile(
    r"(?:\s*\\(?:text|mbox|mathrm|textrm)\{\s*[A-Za-z][A-Za-z .\^\d/]*\}(?:\^\{?\d\}?)?"
    r"|\s+[A-Za-z][A-Za-z.]*(?:\s+[A-Za-z][A-Za-z.]*)?(?:\^\{?\d\}?)?)$"
)
_CURRENCY_RE = re.compile(r"^(?:\\\$|\$|€|£|USD\s*)")


@dataclass(frozen=True)
class Number:
    """An exactly parsed number.

    ``decimals`` is the count of digits written after the decimal point when the number was
    written as a decimal (None for integers, fractions, scientific notation).
    """

    value: Fraction
    decimals: int | None = None
    sig_digits: int = 0
    percent: bool = False
    degrees: bool = False


def _strip_wrappers(text: str) -> str:
    text = text.strip().strip("$").strip()
    for cmd in ("\\text", "\\mathrm", "\\textbf", "\\mathbf", "\\mbox"):
        if text.startswith(cmd + "{") and text.endswith("}") and text.count("{") == 1:
            text = text[len(cmd) + 1 : -1].strip()
    return text.replace("−", "-").replace("\\left", "").replace("\\right", "")


def _sig_digits(digits: str) -> int:
    return len(digits.lstrip("0").replace(".", "")) if digits.strip("0.") else 1


def _parse_unsigned(text: str, decimal_comma: bool | None) -> Number | None:
    match = _THOUSANDS_RE.match(text)
    if match:
        groups = re.sub(r"\D", "", match.group(2))
        whole = match.group(1) + groups
        frac = match.group(3)
        if frac:
            return _decimal(whole, frac[1:])
        return Number(Fraction(int(whole)), sig_digits=_sig_digits(whole))
    match = _DECIMAL_RE.match(text)
    if match:
        if match.group(3) is not None:
            return Number(Fraction(int(match.group(3))), sig_digits=_sig_digits(match.group(3)))
        return _decimal(match.group(1) or "0", match.group(2))
    if decimal_comma:
        match = _DECIMAL_COMMA_RE.match(text)
        if match:
            return _decimal(match.group(1), match.group(2))
    elif decimal_comma is None:
        match = _PLAIN_DECIMAL_COMMA_RE.match(text)
        if match:
            return _decimal(match.group(1) or match.group(3), match.group(2) or match.group(4))
    match = _FRAC_RE.match(text)
    if match:
        num, den = (match.group(1), match.group(2)) if match.group(1) else match.group(3, 4)
        n, d = _parse_unsigned(num.strip(), False), _parse_unsigned(den.strip(), False)
        if n is None or d is None or d.value == 0:
            return None
        return Number(n.value / d.value)
    match = _SLASH_RE.match(text)
    if match and int(match.group(2)) != 0:
        return Number(Fraction(int(match.group(1)), int(match.group(2))))
    match = _MIXED_RE.match(text)
    if match:
        part = _parse_unsigned(match.group(2), False)
        if part is not None and 0 < part.value < 1:
            return Number(int(match.group(1)) + part.value)
        return None
    return _parse_scientific(text)


def _parse_scientific(text: str) -> Number | None:
    for regex in (_SCI_E_RE, _SCI_TIMES_RE):
        match = regex.match(text)
        if match:
            mantissa = _parse_unsigned(match.group(1), False)
            if mantissa is None:
                return None
            return Number(mantissa.value * Fraction(10) ** int(match.group(2)))
    match = _POW10_RE.match(text)
    if match:
        return Number(Fraction(10) ** int(match.group(1)))
    return None


def _decimal(whole: str, frac: str) -> Number:
    value = Fraction(int(whole or "0")) + Fraction(int(frac), 10 ** len(frac))
    return Number(value, decimals=len(frac), sig_digits=_sig_digits(whole + "." + frac))


def parse_number(text: str, *, decimal_comma: bool | None = False) -> Number | None:
    """Parse ``text`` as one number, or return None if it is anything else.

    ``decimal_comma`` reads ``3,5`` as 3.5 (used when the other side is a number); None
    reads only commas that cannot group thousands as decimal commas (``1,22``, ``0,5``).

    >>> parse_number("1 000").value, parse_number(r"2\\frac{1}{2}").value
    (Fraction(1000, 1), Fraction(5, 2))
    >>> parse_number("3,5", decimal_comma=True).value, parse_number("3,5")
    (Fraction(7, 2), None)
    >>> n = parse_number(r"45^\\circ"); (n.value, n.degrees)
    (Fraction(45, 1), True)
    """
    text = _strip_wrappers(text)
    if not text or len(text) > 80:
        return None
    degrees = percent = False
    text = _CURRENCY_RE.sub("", text).strip()
    if _DEGREE_RE.search(text):
        text, degrees = _DEGREE_RE.sub("", text).strip(), True
    elif _PERCENT_RE.search(text):
        text, percent = _PERCENT_RE.sub("", text).strip(), True
    else:
        text = _UNIT_RE.sub("", text).strip()
    while text.startswith("{") and text.endswith("}") and text.count("{") == 1:
        text = text[1:-1].strip()
    sign = 1
    if text and text[0] in "+-":
        sign, text = (-1 if text[0] == "-" else 1), text[1:].strip()
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
        if decimal_comma is None:  # (0,5) is a pair, not a decimal
            decimal_comma = False
    number = _parse_unsigned(text, decimal_comma)
    if number is None:
        return None
    return Number(
        sign * number.value, number.decimals, number.sig_digits, percent=percent, degrees=degrees
    )


def rounds_to(decimal: Number, exact: Fraction) -> bool:
    """True when ``decimal`` (3+ significant digits) is ``exact`` rounded half-up or
    truncated to the digits it writes: 0.333 and 0.334 are 1/3 to three places, 0.335 is not.

    >>> rounds_to(parse_number("1.41"), Fraction(141421356, 10**8))
    True
    >>> rounds_to(parse_number("1.42"), Fraction(141421356, 10**8))
    False
    """
    if decimal.decimals is None or decimal.sig_digits < 3:
        return False
    scale = 10**decimal.decimals
    scaled = abs(exact) * scale
    truncated = Fraction(int(scaled))
    rounded = Fraction(int(scaled + Fraction(1, 2)))
    sign = -1 if exact < 0 else 1
    return decimal.value in (sign * truncated / scale, sign * rounded / scale)


def numbers_equal(pred: Number, gold: Number, *, tolerance: float = 0.0) -> bool:
    """Exact equality of two parsed numbers, with the percent and rounding rules above;
    ``tolerance`` > 0 also accepts a relative difference up to it.

    >>> numbers_equal(parse_number("0.1"), parse_number("0.1000001"))
    False
    >>> numbers_equal(parse_number("50%"), parse_number("0.5"))
    True
    >>> numbers_equal(parse_number("0.333"), parse_number("1/3"))
    False
    >>> numbers_equal(parse_number("1/3"), parse_number("0.333"))
    True
    """
    candidates = [(pred.value, gold.value)]
    if pred.percent != gold.percent:  # 50% may be written as 50 or as 0.5
        pct, other = (pred, gold) if pred.percent else (gold, pred)
        scaled = pct.value / 100
        candidates.append((scaled, other.value) if pct is pred else (other.value, scaled))
    for p, g in candidates:
        if p == g or (tolerance and abs(p - g) <= Fraction(tolerance) * abs(g)):
            return True
    # A gold decimal matches the exact fraction it rounds (0.333 for 1/3): the gold was
    # rounded, the response was not. Never the other way, never two decimals.
    if gold.decimals is None or pred.decimals is not None or _terminates(pred.value):
        return False
    return rounds_to(gold, pred.value)


def _terminates(value: Fraction) -> bool:
    den = value.denominator
    for p in (2, 5):
        while den % p == 0:
            den //= p
    return den == 1
