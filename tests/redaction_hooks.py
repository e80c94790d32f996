"""Redact hooks that tests name through ``LOOPLAB_REDACT`` (``tests.redaction_hooks:mask_emails``)."""

from __future__ import annotations

import re
from typing import Any

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")


def mask_emails(value: Any) -> Any:
    """``value`` with every e-mail address in its strings replaced by ``[email]``."""
    if isinstance(value, str):
        return _EMAIL.sub("[email]", value)
    if isinstance(value, list):
        return [mask_emails(v) for v in value]
    if isinstance(value, dict):
        return {k: mask_emails(v) for k, v in value.items()}
    return value


NOT_A_FUNCTION = 42
