"""When someone's access to a flow may have gone, the flow's sockets re-check theirs.

Membership changed or deleted (their team's flows, and flows shared with that team),
a share changed or deleted, a flow transferred, moved between teams or deleted: each
sends ``flow.access`` to the flow's access group after the transaction commits (see
groups.py). The run and flow sockets then ask the access functions again and close
with 4403 if their user may no longer see the flow. A share link is not a socket's
concern: its pages are read per request.

Gaining access needs no message, so created rows are skipped. Queryset ``delete()``
sends these signals too; queryset ``update()`` does not, and nothing that changes
access uses it.
"""

from __future__ import annotations

from django.db.models import Q
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from webapp.flows.groups import announce_access_change
from webapp.flows.models import Flow, FlowShare
from webapp.teams.models import Membership


def team_flow_ids(team_id: int) -> list[int]:
    """The flows a member of the team reaches through it: its own and those shared with it."""
    return list(
        Flow.objects.filter(Q(team_id=team_id) | Q(shares__team_id=team_id))
        .values_list("pk", flat=True)
        .distinct()
    )


@receiver(post_save, sender=Membership, dispatch_uid="flows.membership_saved")
def membership_saved(sender, instance: Membership, created: bool, **kwargs) -> None:
    if not created:
        announce_access_change(team_flow_ids(instance.team_id), user_id=instance.user_id)


@receiver(post_delete, sender=Membership, dispatch_uid="flows.membership_deleted")
def membership_deleted(sender, instance: Membership, **kwargs) -> None:
    announce_access_change(team_flow_ids(instance.team_id), user_id=instance.user_id)


@receiver(post_save, sender=FlowShare, dispatch_uid="flows.share_saved")
def share_saved(sender, instance: FlowShare, created: bool, **kwargs) -> None:
    if not created:
        # A team share concerns all its members: no single user to name.
        announce_access_change([instance.flow_id], user_id=instance.user_id)


@receiver(post_delete, sender=FlowShare, dispatch_uid="flows.share_deleted")
def share_deleted(sender, instance: FlowShare, **kwargs) -> None:
    announce_access_change([instance.flow_id], user_id=instance.user_id)


@receiver(post_save, sender=Flow, dispatch_uid="flows.flow_saved")
def flow_saved(sender, instance: Flow, created: bool, **kwargs) -> None:
    # Owner or team may have changed (a transfer, a move); a rename costs a cheap re-check.
    if not created:
        announce_access_change([instance.pk])


@receiver(post_delete, sender=Flow, dispatch_uid="flows.flow_deleted")
def flow_deleted(sender, instance: Flow, **kwargs) -> None:
    announce_access_change([instance.pk])
