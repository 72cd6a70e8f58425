"""The ``event-alarm`` worker: "send" a calendar alarm mail by writing it to an outbox."""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from jobqueue_example_contacts import settings

SENDER = "calendar@example.com"


class EventAlarm:
    """``data``: ``{"attendee": "...", "event": {"uid", "summary", "start", "location"}}``.

    The outbox file is named after the event and attendee, so a retried job overwrites the
    mail it may already have written instead of sending it twice.
    """

    def get_title(self, data: dict[str, Any]) -> str:
        return f"Alarm for {data['event']['summary']!r} to {data['attendee']}"

    def handle(self, job: Any) -> dict[str, Any]:
        event, attendee = job.data["event"], job.data["attendee"]
        start = datetime.fromisoformat(event["start"])
        message = EmailMessage()
        message["From"] = SENDER
        message["To"] = attendee
        message["Subject"] = f"Reminder: {event['summary']} at {start:%H:%M}"
        message["Date"] = format_datetime(start)
        message.set_content(
            f"Hello,\n\n{event['summary']} starts at {start:%Y-%m-%d %H:%M} "
            f"in {event.get('location') or 'an unspecified place'}.\n\n-- your calendar\n"
        )
        safe = "".join(c if c.isalnum() or c in "-_.@" else "_" for c in attendee)
        path = settings.outbox() / f"{event['uid']}-{safe}.eml"
        path.write_bytes(bytes(message))
        job.log(f"alarm mail written to {path.name}")
        return {"sent_to": attendee, "subject": message["Subject"], "file": path.name}
