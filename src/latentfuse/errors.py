"""Errors users are meant to read: each names the file / row / field at fault and what was expected."""
from __future__ import annotations


class LatentfuseError(Exception):
    """Base class; the CLI prints these as one clean line instead of a traceback."""


class DataError(LatentfuseError):
    """Bad input data: a missing or broken file, a malformed row, an unknown id."""


class ConfigError(LatentfuseError):
    """A configuration file or option that does not match the expected fields or types."""


class ModelError(LatentfuseError):
    """A saved model that is incomplete, or used with encoders it was not trained with."""


class TrainingError(LatentfuseError):
    """A run that cannot go on: the loss or the weights became NaN/inf, or a checkpoint does not fit."""
