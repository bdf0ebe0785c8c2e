"""Human sizes on the command line: 10MB, 1.5GB, 512KiB, or a raw integer of bytes."""

from __future__ import annotations

import re

from nightshift.pipelines.errors import DataError

_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
    "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
}
_SIZE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str | int, *, what: str = "size") -> int:
    """Parse a positive byte count; errors name the value and the accepted forms."""
    if isinstance(text, bool):
        raise DataError(f"{what} must be a size like 10MB, 1GB or 123456, got {text!r}")
    if isinstance(text, int):
        value = text
    else:
        match = _SIZE_RE.match(str(text))
        unit = match.group(2).lower() if match else None
        if not match or unit not in _UNITS:
            raise DataError(
                f"{what} {text!r} is not a size: use a number of bytes or a unit "
                "(KB, MB, GB, TB, KiB, MiB, GiB), e.g. 10MB"
            )
        value = int(float(match.group(1)) * _UNITS[unit])
    if value <= 0:
        raise DataError(f"{what} must be > 0 bytes, got {text!r}")
    return value


def format_size(n: int) -> str:
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n}B"
