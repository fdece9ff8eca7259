"""Reconcile failures: the WIT ``error`` variant."""

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
