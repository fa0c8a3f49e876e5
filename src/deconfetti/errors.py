"""Exceptions and warnings raised by deconfetti."""

__all__ = ["InputError", "DeconfettiWarning"]


class InputError(ValueError):
    """Something the user gave is wrong: a missing or unreadable product, mismatched
    products, a bad configuration key or value, or an output that already exists.

    The message names the file or key and, where there is one, the fix.
    """


class DeconfettiWarning(UserWarning):
    """Base class of every warning deconfetti emits."""
