"""Schedules: a flow run on a cron expression in a time zone, exactly once per tick.

- ``timing``: pure functions of the cron expression, the zone and an injected clock
  (``due_ticks`` is the heart).
- ``models``: Schedule, and Tick, whose UNIQUE (schedule, tick) is what makes a tick run
  once however many processes tick.
- ``service``: creating and changing schedules (checked against the flow's inputs) and
  ``tick``, which records what each due tick did and starts its run.
- ``ticker``: who calls ``tick``: the server's event loop on the embedded default, each
  Celery worker (and beat, if configured) with the celery driver; ``manage.py
  tick_schedules`` ticks once.
- ``api`` and ``views``: ``/api/flows/{id}/schedules`` and ``/flows/{id}/schedules/``.
"""
