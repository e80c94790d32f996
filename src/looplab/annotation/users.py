"""People who use the app and what their role lets them do."""

from __future__ import annotations

from dataclasses import dataclass

from looplab.store.models import ROLES

LOCAL_USERNAME = "local"


@dataclass(frozen=True)
class Viewer:
    """Who is using the app right now: their username (what labels record as author), name and role."""

    username: str
    display_name: str
    role: str  # one of ROLES: admin, engineer, annotator

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r}; expected one of {', '.join(ROLES)}")

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_annotator(self) -> bool:
        """Annotators only label: they see Annotate and the queues assigned to them, nothing else."""
        return self.role == "annotator"


# Local single-user mode (no users configured): everyone is this admin.
LOCAL_ADMIN = Viewer(username=LOCAL_USERNAME, display_name="Local user", role="admin")
