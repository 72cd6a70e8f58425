"""The ``contact-import`` worker: import an address book into the local contacts store."""

from __future__ import annotations

import json
import sqlite3
from importlib import resources
from typing import Any

from jobqueue_example_contacts import settings

SOURCES = ("sample-addressbook", "team-directory")


class ContactImport:
    """``data``: ``{"user": "alice@example.com", "source": "sample-addressbook"}``.

    Imports are idempotent (upsert by owner and email): a job may run again after a crash,
    so running it twice must not duplicate contacts.
    """

    def get_title(self, data: dict[str, Any]) -> str:
        return f"Import {data['source']} contacts for {data['user']}"

    def handle(self, job: Any) -> dict[str, Any]:
        user, source = job.data["user"], job.data["source"]
        if source not in SOURCES:
            raise ValueError(f"unknown contact source {source!r}; known: {', '.join(SOURCES)}")
        book = json.loads(
            resources.files("jobqueue_example_contacts").joinpath(f"data/{source}.json").read_text()
        )
        contacts = book["contacts"]
        job.log(f"read {len(contacts)} contacts from {source}")
        created = updated = 0
        with sqlite3.connect(settings.contacts_db()) as store:
            store.execute(
                "CREATE TABLE IF NOT EXISTS contacts (owner TEXT, email TEXT, name TEXT, "
                "phone TEXT, PRIMARY KEY (owner, email))"
            )
            for number, contact in enumerate(contacts, start=1):
                exists = store.execute(
                    "SELECT 1 FROM contacts WHERE owner = ? AND email = ?",
                    (user, contact["email"]),
                ).fetchone()
                store.execute(
                    "INSERT OR REPLACE INTO contacts (owner, email, name, phone) "
                    "VALUES (?, ?, ?, ?)",
                    (user, contact["email"], contact["name"], contact.get("phone")),
                )
                updated += bool(exists)
                created += not exists
                job.progress(100 * number / len(contacts), f"{number}/{len(contacts)} contacts")
        store.close()
        job.log(f"imported {len(contacts)} contacts: {created} new, {updated} updated")
        return {"imported": len(contacts), "created": created, "updated": updated}
