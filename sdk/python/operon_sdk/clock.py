"""Wall-clock timestamps in the form Kubernetes uses (``metav1.Time``).

Inside the component, :func:`time.time` reads the WASI wall clock, which the
host provides (and ``operon reconcile --now`` fixes).
"""

import time as _time

_DAYS = 86_400


def civil_from_days(days: int) -> tuple[int, int, int]:
    """Days since 1970-01-01 to a proleptic Gregorian (year, month, day)."""
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (1 if month <= 2 else 0)
    return year, month, day


def format_rfc3339(unix_secs: float) -> str:
    """RFC 3339 UTC at second precision, e.g. ``2024-05-01T12:00:00Z``."""
    secs = int(unix_secs // 1)
    days, sod = divmod(secs, _DAYS)
    year, month, day = civil_from_days(days)
    return (
        f"{year:04d}-{month:02d}-{day:02d}"
        f"T{sod // 3600:02d}:{sod % 3600 // 60:02d}:{sod % 60:02d}Z"
    )


def now_rfc3339() -> str:
    """The current wall-clock time as RFC 3339 UTC (the epoch if the clock is before it)."""
    return format_rfc3339(max(0.0, _time.time()))
