"""Errors a user can cause. Each carries a one-line message; the CLI maps them to exit code 2."""

from __future__ import annotations


class BrushworkError(Exception):
    """Base class for every error caused by the user's input or environment."""

    exit_code = 2


class InputError(BrushworkError):
    """A file or value given by the user cannot be used (missing, empty, truncated, not an image, too large)."""


class OutputError(BrushworkError):
    """An output path cannot be written (unwritable, would overwrite an input)."""


class ModelUnavailable(BrushworkError):
    """Weights are missing from the cache and cannot be fetched, or fail their checksum."""


class DeviceError(BrushworkError):
    """The requested compute device does not exist on this machine."""


class BrushworkWarning(UserWarning):
    """Something a run skipped or changed for the user's sake (an unreadable file in a folder, sub-folders not
    read); the CLI prints each as one ``brushwork: warning: …`` line."""


class ClusterError(BrushworkError):
    """Ray is missing, the cluster cannot be reached, or its workers keep failing."""
