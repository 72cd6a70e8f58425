"""The dispatcher's runtime, in parts; ``dispatcher.py`` puts them together.

Read from the top: each part imports only the parts listed after it.

* ``dispatcher`` -- the settings, ``run`` and ``stop``: builds the parts, starts the threads.
* ``shutdown`` -- the supervisor: grace period, abandon, the signal handlers, the exit.
* ``slot`` -- the producer: one slot's loop (claim ahead, back off, burst, ``max_jobs``), and
  its restart after a crash.
* ``recorder`` -- the completer: outcomes written one by one (``Inline``) or in batches
  (``Batch``), each write claiming the next jobs where it can; releases and cancels.
* ``executor`` -- runs one handler (hooks, watchdog, async loop) and says how it ended.
* ``runs`` -- the handlers running now, and interrupting them (shutdown, cancel).
* ``leases`` -- the lease book: what this dispatcher holds, renewed, cancelled or lost.
* ``heartbeat`` / ``maintenance`` -- the bounded heartbeat call; maintenance and its stalls.
* ``outage`` -- riding out an unreachable backend.
* ``retrying`` -- what a failed attempt becomes (the retry decision) and its error text.
* ``ending`` / ``tally`` -- how a run ends (stop, crash, exit statuses); what it counted.
* ``interrupt``, ``prefetch``, ``running`` -- the watchdog, the prefetch policy, the job a
  handler sees (``RunningJob``).
"""
