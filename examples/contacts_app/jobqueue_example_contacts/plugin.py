"""The plugin module named by this distribution's ``jobqueue`` entry point."""

from __future__ import annotations

from collections.abc import Iterable

import jobqueue
from jobqueue import Backoff, Schedule, Worker
from jobqueue_example_contacts.alarms import EventAlarm
from jobqueue_example_contacts.contacts import ContactImport


@jobqueue.hookimpl
def jobqueue_register_workers() -> Iterable[Worker]:
    return [
        Worker("contact-import", ContactImport(), attempts=3, backoff=Backoff.exponential(1.0)),
        # Mails must not go out twice at once for one event: one alarm job runs at a time.
        Worker("event-alarm", EventAlarm(), attempts=5, backoff=2.0, max_active=1),
    ]


@jobqueue.hookimpl
def jobqueue_register_schedules() -> Iterable[Schedule]:
    # The seed's nightly synchronize ('00 00 00 * * *' in every ESN instance, so N instances
    # imported N times a night): here every worker runs a scheduler, and the night still
    # gets one import.
    return [
        Schedule(
            name="nightly-contact-sync",
            worker="contact-import",
            cron="0 0 * * *",
            tz="Europe/Paris",
            data={"user": "team@example.com", "source": "team-directory"},
        )
    ]
