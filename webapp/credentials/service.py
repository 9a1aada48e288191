"""Credentials: who may use, make and delete them, and the secrets one run may use.

- A personal credential is its owner's alone.
- A team's: its editors and owners may use it (see its name and kind, and name it in
  their flows); only its owners make and delete them. Viewers and strangers see nothing
  (strangers get 404, as for anything of a team they are not in).
- A value is write-only: entered once, never in any page or answer again.

A run uses its flow's team's credentials, or, for a personal flow, those of whoever
started it: nobody's credential is used by a run they could not have started themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.http import Http404

from graphs.credentials import (
    DEFAULT_API_KEY_HEADER,
    HTTP_KINDS,
    NAME,
    NAME_HELP,
    Secret,
    value_problem,
)
from webapp.credentials import crypto
from webapp.credentials.models import Credential
from webapp.teams.models import Membership, Role
from webapp.teams.services import team_for


class CredentialRefused(ValueError):
    """Why a credential cannot be made as asked (its name, kind or value); never quotes the
    value."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def usable(user) -> QuerySet[Credential]:
    """The credentials `user` may use: their own, and their teams' where they edit."""
    teams = Membership.objects.filter(user=user, role__in=Role.at_least(Role.EDITOR))
    return (
        Credential.objects.filter(Q(owner=user) | Q(team__in=teams.values("team_id")))
        .select_related("team")
        .order_by("team__name", "name", "pk")
    )


def owner_teams(user) -> list:
    """The teams whose credentials `user` may make (they own them)."""
    rows = Membership.objects.filter(user=user, role=Role.OWNER).select_related("team")
    return [m.team for m in rows.order_by("team__name", "team_id")]


def may_change(user, credential: Credential) -> bool:
    if credential.team_id is None:
        return credential.owner_id == user.pk
    return Membership.objects.filter(
        team_id=credential.team_id, user=user, role=Role.OWNER
    ).exists()


def create(
    user,
    name: str,
    kind: str,
    value: str,
    team_id: int | None = None,
    header: str | None = None,
) -> Credential:
    """Make a credential: personal, or the team's (its owners only: Http404 for strangers,
    PermissionDenied for its other members)."""
    team = team_for(user, team_id, Role.OWNER).team if team_id is not None else None
    if not NAME.fullmatch(name or ""):
        raise CredentialRefused("name", f"the name must be an identifier: {NAME_HELP}")
    header = (header or "").strip() or DEFAULT_API_KEY_HEADER
    problem = value_problem(kind, value, header)
    if problem:
        raise CredentialRefused("kind" if problem.startswith("kind") else "value", problem)
    credential = Credential(
        owner=None if team else user,
        team=team,
        name=name,
        kind=kind,
        header=header,
        encrypted=crypto.encrypt(value),
        created_by=user,
    )
    try:
        with transaction.atomic():
            credential.save()
    except IntegrityError:
        where = f"team {team.name}" if team else "you"
        raise CredentialRefused("name", f"{where} already have a credential named {name}") from None
    return credential


def for_change(user, credential_id: int) -> Credential:
    """A credential `user` may delete. Http404 for anything they may not know exists;
    PermissionDenied for a team's credential when they are a member but not an owner."""
    credential = Credential.objects.select_related("team").filter(pk=credential_id).first()
    if credential is None:
        raise Http404("No such credential.")
    if credential.team_id is None:
        if credential.owner_id != user.pk:
            raise Http404("No such credential.")
        return credential
    try:
        team_for(user, credential.team_id, Role.OWNER)
    except PermissionDenied:
        raise PermissionDenied("Only the team's owners may change its credentials.") from None
    return credential


@dataclass(frozen=True)
class RunCredentials:
    """The secrets one run may use, by name (``graphs.credentials.CredentialSource``).
    Decrypted when asked for, so a run that names none decrypts nothing."""

    rows: dict[str, tuple[str, str, str]]  # name -> (kind, header, encrypted)

    def look_up(self, name: str) -> Secret | None:
        row = self.rows.get(name)
        if row is None:
            return None
        kind, header, token = row
        return Secret(kind=kind, value=crypto.decrypt(token), header=header)

    def __repr__(self) -> str:
        return f"RunCredentials({sorted(self.rows)})"


def names_credentials(document: object) -> bool:
    """Whether a flow document (inline flows of map nodes included) has an http node that
    names a credential in ``auth``."""
    if isinstance(document, dict):
        config = document.get("config")
        if document.get("type") == "http" and isinstance(config, dict) and config.get("auth"):
            return True
        return any(names_credentials(value) for value in document.values())
    if isinstance(document, list):
        return any(names_credentials(value) for value in document)
    return False


def run_credentials(team_id: int | None, user_id: int | None) -> RunCredentials:
    """The credentials of a run: its flow's team's, else its starter's own."""
    if team_id is not None:
        found = Credential.objects.filter(team_id=team_id)
    elif user_id is not None:
        found = Credential.objects.filter(owner_id=user_id, team__isnull=True)
    else:
        found = Credential.objects.none()
    rows = found.values_list("name", "kind", "header", "encrypted")
    return RunCredentials({name: (kind, header, token) for name, kind, header, token in rows})


def offered_names(team_id: int | None, user_id: int) -> list[str]:
    """The credentials an http node's form offers an editor: those a run of the flow would
    be lent when they start it (its team's, else their own), by name."""
    if team_id is not None:
        found = Credential.objects.filter(team_id=team_id)
    else:
        found = Credential.objects.filter(owner_id=user_id, team__isnull=True)
    found = found.filter(kind__in=HTTP_KINDS).order_by("name")
    return list(found.values_list("name", flat=True))


def _model_keys(team_id: int | None, user_id: int | None) -> QuerySet[Credential] | None:
    if team_id is not None:
        found = Credential.objects.filter(team_id=team_id)
    elif user_id is not None:
        found = Credential.objects.filter(owner_id=user_id, team__isnull=True)
    else:
        return None
    return found.filter(kind=Credential.Kind.anthropic_key)


def has_model_key(team_id: int | None, user_id: int | None) -> bool:
    """Whether runs of a flow of this team (else, a personal one of this user) call the
    model with a key of their own (``model_key``), without decrypting it."""
    found = _model_keys(team_id, user_id)
    return found is not None and found.exists()


def model_key(team_id: int | None, user_id: int | None) -> str | None:
    """The Anthropic key a run's model calls use instead of the server's: its flow's
    team's ``anthropic_key`` credential, else (a personal flow) its starter's; with
    several, the first by name. None: the server's key, or the offline model."""
    found = _model_keys(team_id, user_id)
    if found is None:
        return None
    token = found.order_by("name", "pk").values_list("encrypted", flat=True).first()
    return crypto.decrypt(token) if token is not None else None


def rotate_all() -> int:
    """Re-encrypt every value with the first key; how many there were."""
    count = 0
    with transaction.atomic():
        for credential in Credential.objects.select_for_update().only("pk", "encrypted"):
            credential.encrypted = crypto.rotate(credential.encrypted)
            credential.save(update_fields=["encrypted"])
            count += 1
    return count
