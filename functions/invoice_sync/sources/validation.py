"""Pydantic validation errors turned into what a webhook sender reads in a 400, for every source.

Field paths and the rules broken, never the values sent: an error body must not echo a payload
back (it could carry personal data or be crafted to forge a log line).
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError

MESSAGES = {
    "extra_forbidden": "unknown field (not in the schema; check its spelling)",
    "missing": "required field is missing",
}


def where(loc: Sequence[int | str]) -> str:
    """``("data", "invoice", "lines", 0, "quantity")`` -> ``data.invoice.lines[0].quantity``.

    A name from the body (an unknown field) is shown so the sender can find it, but cut short and
    kept to printable ASCII so a hostile key cannot flood or forge a log line.
    """
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        name = "".join(c if " " < c < "\x7f" else "?" for c in part)
        name = name if len(name) <= 64 else name[:61] + "..."
        out += f".{name}" if out else name
    return out or "body"


def describe(error: ValidationError, prefix: tuple[str, ...] = ()) -> str:
    """A short, user-facing account of what is wrong: field paths and rules, never input values."""
    parts = []
    for item in error.errors(include_url=False, include_input=False)[:5]:
        message = MESSAGES.get(item["type"])
        if message is None:
            # Messages of our own validators arrive as "Value error, <ours>"; pydantic's own name
            # the rule broken ("should be greater than or equal to 0"), not the value.
            message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{where([*prefix, *item['loc']])}: {message}")
    more = error.error_count() - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
