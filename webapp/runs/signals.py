"""Give a user's storage back when their runs go (webapp.runs.limits keeps the count).

Runs are only ever deleted with their flow. What they stored is summed per user before the
delete and taken off afterwards: after, so that the users' rows are locked only once the
runs' rows are, in the order coordinator steps lock them.
"""

from __future__ import annotations

from typing import Any

from django.db.models import F, Sum, Value
from django.db.models.functions import Greatest
from django.db.models.signals import post_delete, pre_delete
from django.dispatch import receiver

from webapp.flows.models import Flow
from webapp.runs.models import Run, UserStorage


@receiver(pre_delete, sender=Flow, dispatch_uid="runs.flow_deleting")
def flow_deleting(sender: type[Flow], instance: Flow, **kwargs: Any) -> None:
    runs = Run.objects.filter(flow=instance, started_by__isnull=False).order_by()
    totals = runs.values_list("started_by").annotate(total=Sum("stored_bytes"))
    instance._run_storage = [(user_id, total) for user_id, total in totals if total]


@receiver(post_delete, sender=Flow, dispatch_uid="runs.flow_deleted")
def flow_deleted(sender: type[Flow], instance: Flow, **kwargs: Any) -> None:
    for user_id, total in getattr(instance, "_run_storage", ()):
        # Never below 0: a count kept since before this accounting may be short.
        UserStorage.objects.filter(user_id=user_id).update(
            stored_bytes=Greatest(F("stored_bytes") - total, Value(0))
        )
