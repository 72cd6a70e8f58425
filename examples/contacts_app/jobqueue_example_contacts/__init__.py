"""jobqueue example app: contact imports and event-alarm mails, registered as a plugin."""

__version__ = "0.1.0"
