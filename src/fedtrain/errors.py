"""Exceptions raised by fedtrain; each message says what to fix."""

from __future__ import annotations


class FedTrainError(Exception):
    """Base class of every error fedtrain raises on purpose."""


class ConfigError(FedTrainError, ValueError):
    """A run option is invalid (unknown model, fraction outside (0, 1], ...)."""


class DataError(FedTrainError, ValueError):
    """The dataset cannot be used as given (missing folder, no images, empty class, ...)."""


class ProtocolError(FedTrainError):
    """A message between client and server is malformed, out of order or fails authentication."""


class RoundFailed(ProtocolError):
    """A secure round cannot complete with the clients that remain; `retryable` if no decryption had begun."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class CheckpointError(FedTrainError):
    """A run directory cannot be resumed or reported on."""
