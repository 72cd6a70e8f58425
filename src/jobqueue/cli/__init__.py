"""The ``jobqueue`` command: run a worker, submit jobs, look at them, steer the queue.

``main.py`` parses the command line and runs the worker/submit/job/jobs/stats commands,
``control.py`` the control-plane ones (cancel, retry, purge, pause, resume, workers),
``metrics.py`` and ``dashboard.py`` the servers (metrics, dashboard),
``apps.py`` loads ``--app`` and opens the queue, ``output.py`` formats what is printed.
"""

from jobqueue.cli.main import build_parser, main, parse_args

__all__ = ["build_parser", "main", "parse_args"]
