"""Reconcile failures: the WIT ``error`` variant."""

import os
import traceback
from typing import Literal

ErrorKind = Literal["retryable", "permanent"]


class ReconcileError(Exception):
    """A reconcile failure. Raise :func:`permanent` or :func:`retryable`."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.message = message

    @property
    def is_retryable(self) -> bool:
        return self.kind == "retryable"

    def __repr__(self) -> str:
        return f"ReconcileError({self.kind!r}, {self.message!r})"


def retryable(message: str) -> ReconcileError:
    """A transient failure: the host retries with backoff."""
    return ReconcileError("retryable", str(message))


def permanent(message: str) -> ReconcileError:
    """The parent cannot be reconciled as it is: no retry until it changes."""
    return ReconcileError("permanent", str(message))


#: How many frames of a bug's traceback its message names, innermost first.
FRAMES = 3


def describe_exception(e: BaseException) -> str:
    """An unexpected exception (a bug) in one line, with where it was
    raised: ``KeyError: 'size' (at app.py:42 in reconcile <- ...)``,
    innermost frame first. The line reaches the host as a retryable error,
    so its log (and ``operon reconcile``) says which line of the plugin
    failed."""
    text = f"{type(e).__name__}: {e}"
    frames = traceback.extract_tb(e.__traceback__)[::-1][:FRAMES]
    if not frames:
        return text
    where = " <- ".join(f"{os.path.basename(f.filename)}:{f.lineno} in {f.name}" for f in frames)
    return f"{text} (at {where})"
