"""Exceptions that carry a message meant for the user.

They are raised by services and shown as messages only at the boundary (CLI, page, HTTP).
"""

from __future__ import annotations


class LooplabError(Exception):
    """Base of every error whose message is fit to show to a user as is."""


class ConfigError(LooplabError):
    """A setting is missing or invalid; the message says which and how to fix it."""


class StoreError(LooplabError):
    """The database cannot be opened, migrated or written; the message says why."""


class NotFound(LooplabError):
    """A named thing (trace, dataset, experiment...) does not exist."""
