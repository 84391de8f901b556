"""Memory sizes: parsing budgets such as "20GB", available RAM, peak resident memory."""

from __future__ import annotations

import re
import resource
from pathlib import Path

from harness.errors import ConfigError

DEFAULT_BUDGET_FRACTION = 0.5
"""Share of the currently available RAM used when no budget is given; the rest is left to the page
cache, which serves the tiles kept in temporary files (the pristine copy of a large kernel)."""

_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_memory_size(size: float | str) -> int:
    """Bytes in ``size``: a number of bytes or a string such as "20GB", "1.5 GiB", "512MB".

    KB/MB/GB/TB (and K/M/G/T) are powers of 1000; KiB/MiB/GiB/TiB powers of 1024.
    """
    if isinstance(size, (int, float)):
        value = float(size)
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", size)
        if not match or match.group(2).lower() not in _UNITS:
            raise ConfigError(f"cannot read memory size {size!r}: expected e.g. '20GB', '1.5GiB' or a number of bytes")
        value = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if value <= 0:
        raise ConfigError(f"memory size must be positive, got {size!r}")
    return int(value)


def format_bytes(size: float) -> str:
    """``size`` bytes as a short string in GB/MB (powers of 1000)."""
    if size >= 10**9:
        return f"{size / 10**9:.2f} GB"
    return f"{size / 10**6:.1f} MB"


def available_memory_bytes(meminfo: Path = Path("/proc/meminfo")) -> int:
    """``MemAvailable`` from /proc/meminfo: RAM that can be used without swapping."""
    for line in meminfo.read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise OSError(f"no MemAvailable line in {meminfo}")


def default_memory_budget() -> int:
    """A safe share (:data:`DEFAULT_BUDGET_FRACTION`) of the RAM available now."""
    return int(DEFAULT_BUDGET_FRACTION * available_memory_bytes())


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (``ru_maxrss``, KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
