"""Errors the engine raises for expected problems with the user's input."""

from __future__ import annotations


class BadInputError(ValueError):
    """An input (image, mask, checkpoint, class, preset) the engine cannot use.

    The message is one sentence that names the file (or argument) and the
    problem; front ends show it as is, without a traceback.
    """


class NonFiniteLossError(RuntimeError):
    """The optimisation produced a NaN or infinite loss; the last good state is kept."""
