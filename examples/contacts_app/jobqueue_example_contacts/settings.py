"""Where the example keeps its contacts store and mail outbox.

Handlers may run in any dispatcher process, so they read the location from the environment
(``CONTACTS_APP_HOME``) rather than from the process that submitted the job.
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_VARIABLE = "CONTACTS_APP_HOME"


def home() -> Path:
    path = Path(os.environ.get(HOME_VARIABLE) or "contacts-app-data")
    path.mkdir(parents=True, exist_ok=True)
    return path


def contacts_db() -> Path:
    return home() / "contacts.db"


def outbox() -> Path:
    path = home() / "outbox"
    path.mkdir(parents=True, exist_ok=True)
    return path
