"""Privacy by default: real numbers never reach logs, metrics or errors in full."""

from __future__ import annotations

import re


def mask_number(number: str, *, keep_head: int = 3, keep_tail: int = 4) -> str:
    """Hide the middle of a phone number: '+919876543210' -> '+91******3210'.

    Numbers too short to keep both ends are hidden but for their last two digits.
    """
    if len(number) <= keep_head + keep_tail:
        return "*" * max(len(number) - 2, 0) + number[-2:]
    return number[:keep_head] + "*" * (len(number) - keep_head - keep_tail) + number[-keep_tail:]


_NUMBER_RUN = re.compile(r"\+?\d{7,}")


def mask_numbers_in(text: str) -> str:
    """Mask every phone-number-like run (7 or more digits, optional '+') inside `text`."""
    return _NUMBER_RUN.sub(lambda m: mask_number(m.group()), text)


def mask_party(key: str) -> str:
    """Mask a participant key for logs: a number as `mask_number` does, a SIP key
    `alice@example.com` as `a****@example.com` (the host names a carrier or a PBX, not a
    person)."""
    user, at, host = key.partition("@")
    if not at:
        return mask_number(key)
    if user.lstrip("+").isdigit():
        return f"{mask_number(user)}@{host}"
    return f"{user[:1]}{'*' * max(len(user) - 1, 1)}@{host}"
