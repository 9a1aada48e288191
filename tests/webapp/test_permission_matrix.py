"""The permission matrix: every route of the URL configuration x every persona.

Alice owns the team "Research" and its flow; bob is the team's editor, carol its viewer,
dave a stranger; and someone not logged in. Each route is listed in ROUTES with the
method(s) it answers, the least it needs, and how to build its URL and body from the
world below. What each persona must get:

- a stranger: 404, exactly like an object that does not exist (never 403 or 400);
- not logged in: the login page (pages) or 401 (the API);
- logged in but with a role too low: 403;
- enough: 2xx or 3xx, or a 4xx about the request itself, but never 401, 403, 404 or 405.

The routes come from walking ``get_resolver()`` (the django-ninja API included); a route
missing from ROUTES fails ``test_every_route_is_in_the_table``, so a new route cannot
slip through without a line here. The two websockets get the same treatment at the end.

Every request runs in a savepoint that is rolled back, so each persona meets the same
world (alice deleting the flow does not leave bob without one).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.db import transaction
from django.http import HttpResponse
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

import graphs
from webapp.accounts.models import ApiToken
from webapp.asgi import application
from webapp.chat.models import ChatLink, ChatMessage, Conversation
from webapp.chat.service import visitor_token
from webapp.credentials import service as credentials
from webapp.credentials.models import Credential
from webapp.flows import services
from webapp.flows.models import Flow, FlowShare, ShareLink, Webhook
from webapp.flows.sharing import service as sharing
from webapp.flows.webhooks import service as webhooks
from webapp.mcpservers.models import McpServer
from webapp.runs.eventlog import write_batch
from webapp.runs.models import Run, RunFile
from webapp.schedules.models import Schedule
from webapp.teams import services as team_services
from webapp.teams.models import Invite, Membership, Role, Team

# ---- The world ---------------------------------------------------------------------------

PERSONAS = ("anonymous", "dave", "carol", "bob", "alice")
# Each persona's role on the team and on its flow (the flow belongs to the team).
ROLE = {"alice": Role.OWNER, "bob": Role.EDITOR, "carol": Role.VIEWER}

PUBLIC = "public"  # anyone, logged in or not
USER = "user"  # anyone logged in; nothing of alice's is involved
SELF = "self"  # alice's own (an API token): only she may see it
INVITEE = "invitee"  # an invitation or a share addressed to dave: only he may see it
LOGOUT = "logout"  # everyone ends on the login page
NOWHERE = "nowhere"  # django-ninja's /api/ root: only named for reversing; a 404 for all
SIGNED = "signed"  # a webhook: only its signature opens it, never a session or a token: 401
VIEWER, EDITOR, OWNER = Role.VIEWER, Role.EDITOR, Role.OWNER


@dataclass
class World:
    users: dict[str, Any]
    team: Team
    flow: Flow
    run: Run
    other_run: Run
    share: FlowShare
    link: ShareLink
    link_token: str
    invite: Invite
    dave_invite: Invite
    dave_share: FlowShare
    join_token: str
    token: ApiToken
    hook: Webhook
    chat_link: ChatLink
    visit: ChatMessage  # a reply in a visitor's conversation through chat_link
    panel: ChatMessage  # a reply in alice's conversation in the chat panel
    credential: Credential  # the team's: its owners change it, its editors only use it
    # The team's, at an address the SSRF policy refuses: a refresh fails at once, offline.
    mcp_server: McpServer

    @property
    def document(self) -> dict[str, Any]:
        return services.starter_graph("Matrix flow")

    def user_id(self, name: str) -> int:
        return self.users[name].pk


def make_user(username: str):
    # No password: hashing one per persona per route would be most of the test's time.
    return get_user_model().objects.create_user(username, f"{username}@example.com")


def recorded_run(flow: Flow, by) -> Run:
    """A finished run of the flow with its real events (the engine runs it here)."""
    run = Run.objects.create(
        flow=flow, flow_version=flow.current(), started_by=by, inputs={"input": "hi"}
    )
    events: list[dict[str, Any]] = []
    compiled = graphs.compile_flow(flow.current().graph)
    asyncio.run(compiled.run({"input": "hi"}, sink=events.append))
    write_batch(run.pk, events)
    run.refresh_from_db()
    return run


@pytest.fixture
def world(db) -> World:
    return build_world()


def build_world() -> World:
    users = {name: make_user(name) for name in ("alice", "bob", "carol", "dave", "erin", "frank")}
    team = Team.objects.create(name="Research")
    for name, role in (*ROLE.items(), ("erin", Role.VIEWER)):
        Membership.objects.create(team=team, user=users[name], role=role)
    alice = users["alice"]
    flow = services.create(alice, "Matrix flow", services.starter_graph("Matrix flow"), team=team)
    services.save(flow, alice, services.starter_graph("Matrix flow", output_name="answer"), 1)
    flow.refresh_from_db()
    link, link_token = sharing.create_link(flow, alice)
    _, join_token = team_services.create_invite_link(team, alice, Role.VIEWER, 7)
    # Dave's invitation is to a team of erin's, so that accepting it gives him nothing of alice's.
    elsewhere = Team.objects.create(name="Elsewhere")
    Membership.objects.create(team=elsewhere, user=users["erin"], role=Role.OWNER)
    # So is the share waiting for his answer: a flow of erin's.
    erins = services.create(users["erin"], "Erin's", services.starter_graph("Erin's"))
    chat_link = ChatLink.objects.create(flow=flow, name="Chat", token="c" * 43, created_by=alice)
    visit = Conversation.objects.create(flow=flow, link=chat_link, visitor="v1")
    panel = Conversation.objects.create(flow=flow, owner=alice)
    return World(
        users=users,
        team=team,
        flow=flow,
        run=recorded_run(flow, alice),
        other_run=recorded_run(flow, alice),
        share=FlowShare.objects.create(
            flow=flow, user=users["frank"], invitee="frank", created_by=alice
        ),
        link=link,
        link_token=link_token,
        invite=team_services.invite_user(team, alice, "frank", Role.VIEWER),
        dave_invite=team_services.invite_user(elsewhere, users["erin"], "dave", Role.VIEWER),
        dave_share=sharing.share_with_user(erins, users["erin"], "dave", "viewer"),
        join_token=join_token,
        token=ApiToken.issue(alice, "matrix")[0],
        hook=webhooks.create(flow, alice, "Matrix hook"),
        chat_link=chat_link,
        visit=ChatMessage.objects.create(conversation=visit, role="assistant", content="hi"),
        panel=ChatMessage.objects.create(conversation=panel, role="assistant", content="hi"),
        credential=credentials.create(alice, "matrix_key", "bearer", "s3cret", team.pk),
        mcp_server=McpServer.objects.create(
            team=team, name="matrix_tools", url="http://10.0.0.9/mcp", created_by=alice
        ),
    )


# ---- The table ---------------------------------------------------------------------------

Build = Callable[[World], dict[str, Any]]


def nothing(w: World) -> dict[str, Any]:
    return {}


def flow_id(w: World) -> dict[str, Any]:
    return {"flow_id": w.flow.pk}


def run_id(w: World) -> dict[str, Any]:
    return {"run_id": w.run.pk}


def run_file_ids(w: World) -> dict[str, Any]:
    """A text file of the run's (made on first use), its input a reference to it."""
    stored, _ = RunFile.objects.get_or_create(
        run=w.run,
        input_name="input",
        defaults={"name": "a.txt", "media_type": "text/plain", "size": 2, "sha256": "0" * 64,
                  "data": b"hi"},
    )  # fmt: skip
    ref = {"file": stored.pk, "name": "a.txt", "media_type": "text/plain", "size": 2,
           "sha256": "0" * 64}  # fmt: skip
    Run.objects.filter(pk=w.run.pk).update(inputs={"input": ref})
    return {"run_id": w.run.pk, "file_id": stored.pk}


def team_id(w: World) -> dict[str, Any]:
    return {"team_id": w.team.pk}


def erin_in_team(w: World) -> dict[str, Any]:
    return {"team_id": w.team.pk, "user_id": w.user_id("erin")}


def schedule_ids(w: World) -> dict[str, Any]:
    """The flow's schedule (made on first use, inside the request's savepoint)."""
    schedule, _ = Schedule.objects.get_or_create(
        flow=w.flow,
        defaults={"cron": "0 * * * *", "since": timezone.now(), "created_by": w.users["alice"]},
    )
    return {"flow_id": w.flow.pk, "schedule_id": schedule.pk}


def hook_in_flow(w: World) -> dict[str, Any]:
    return {"flow_id": w.flow.pk, "hook_id": w.hook.pk}


def version_1(w: World) -> dict[str, Any]:
    return {"flow_id": w.flow.pk, "number": 1}


def current(w: World) -> dict[str, Any]:
    return {"base_version": w.flow.version}


def chat_link_id(w: World) -> dict[str, Any]:
    return {"flow_id": w.flow.pk, "link_id": w.chat_link.pk}


def panel_reply(w: World) -> dict[str, Any]:
    ids = {"conversation_id": w.panel.conversation_id, "message_id": w.panel.pk}
    return {"flow_id": w.flow.pk, **ids}


def visit_reply(w: World) -> dict[str, Any]:
    ids = {"conversation_id": w.visit.conversation_id, "message_id": w.visit.pk}
    return {"token": w.chat_link.token, **ids}


def as_visitor(w: World) -> dict[str, Any]:
    """A chat link's visitor is whoever holds the signed key (login plays no part)."""
    return {"X-Chat-Visitor": visitor_token("v1")}


def credential_id(w: World) -> dict[str, Any]:
    return {"credential_id": w.credential.pk}


def new_team_credential(w: World) -> dict[str, Any]:
    return {"name": "made", "kind": "bearer", "value": "v", "team": w.team.pk}


def mcp_server_id(w: World) -> dict[str, Any]:
    return {"server_id": w.mcp_server.pk}


def new_team_mcp_server(w: World) -> dict[str, Any]:
    return {"name": "made", "url": "https://mcp.example.com/mcp", "team": w.team.pk}


@dataclass(frozen=True)
class Check:
    """One request: its method, the least it needs, its URL kwargs, query and body."""

    method: str
    need: str
    kwargs: Build = nothing
    query: Build = nothing
    body: Build = nothing
    headers: Build = nothing


def GET(
    need: str, kwargs: Build = nothing, query: Build = nothing, headers: Build = nothing
) -> Check:
    return Check("GET", need, kwargs, query, nothing, headers)


def POST(need: str, kwargs: Build = nothing, body: Build = nothing) -> Check:
    return Check("POST", need, kwargs, nothing, body)


def PUT(need: str, kwargs: Build = nothing, body: Build = nothing) -> Check:
    return Check("PUT", need, kwargs, nothing, body)


def PATCH(need: str, kwargs: Build = nothing, body: Build = nothing) -> Check:
    return Check("PATCH", need, kwargs, nothing, body)


def DELETE(need: str, kwargs: Build = nothing) -> Check:
    return Check("DELETE", need, kwargs)


ROUTES: dict[str, tuple[Check, ...]] = {
    # ---- Flows: list, new, copy, delete, the editor
    "flow_list": (GET(USER),),
    "flow_new": (POST(USER),),
    "flow_templates": (GET(USER),),
    "flow_template_use": (POST(USER, lambda w: {"name": "chain"}),),
    "flow_duplicate": (POST(EDITOR, flow_id),),
    "flow_delete": (GET(OWNER, flow_id), POST(OWNER, flow_id)),
    "flow_editor": (GET(VIEWER, flow_id),),
    "flow_node_form": (
        POST(VIEWER, flow_id, lambda w: {"type": "input", "node_id": "input", "config": "{}"}),
    ),
    "flow_edge_form": (
        POST(
            VIEWER,
            flow_id,
            lambda w: {
                "edge_id": "e1",
                **{"source": "question", "target": "answer"},
                **{"source_port": "value", "target_port": "value"},
                "graph": json.dumps(w.document),
            },
        ),
    ),
    # ---- Versions, export, import
    "flow_versions": (GET(VIEWER, flow_id),),
    "flow_diff": (GET(VIEWER, flow_id, lambda w: {"a": 1, "b": 2}),),
    "flow_version_meta": (GET(VIEWER, flow_id),),
    "flow_version": (GET(VIEWER, lambda w: {"flow_id": w.flow.pk, "number": 1}),),
    "flow_restore": (POST(EDITOR, lambda w: {"flow_id": w.flow.pk, "number": 1}, current),),
    "flow_export": (GET(VIEWER, flow_id),),
    "flow_publish": (POST(EDITOR, version_1),),
    "flow_unpublish": (POST(EDITOR, flow_id),),
    # ---- Webhooks: the page for editors, and the URL only a signature opens
    "flow_webhooks": (GET(EDITOR, flow_id), POST(EDITOR, flow_id, lambda w: {"name": "New"})),
    "flow_hook_toggle": (POST(EDITOR, hook_in_flow),),
    "flow_hook_rotate": (POST(EDITOR, hook_in_flow),),
    "flow_hook_delete": (POST(EDITOR, hook_in_flow),),
    "hook_receive": (POST(SIGNED, lambda w: {"token": w.hook.token}),),
    "flow_import": (
        GET(USER),
        POST(USER, nothing, lambda w: {"text": json.dumps(w.document), "space": "personal"}),
    ),
    "flow_import_version": (
        GET(EDITOR, flow_id),
        POST(EDITOR, flow_id, lambda w: {"text": json.dumps(w.document), **current(w)}),
    ),
    # ---- Editing together
    "flow_collab_saved": (GET(VIEWER, lambda w: {"flow_id": w.flow.pk, "number": 2}),),
    "flow_collab_diff": (
        POST(VIEWER, flow_id, lambda w: {"doc": json.dumps(w.document), "version": 2}),
    ),
    "flow_collab_copy": (
        POST(EDITOR, flow_id, lambda w: {"doc": json.dumps(w.document), "version": 2}),
    ),
    # ---- Runs
    "run_form": (GET(EDITOR, flow_id),),
    "run_estimate": (GET(EDITOR, flow_id),),
    "recent_runs": (GET(VIEWER, flow_id),),
    "run_history": (GET(USER),),
    "flow_runs": (GET(VIEWER, flow_id),),
    "run_compare": (GET(VIEWER, nothing, lambda w: {"a": w.run.pk, "b": w.other_run.pk}),),
    "run_detail": (GET(VIEWER, run_id),),
    "run_compare_picker": (GET(VIEWER, run_id),),
    "run_outputs": (GET(VIEWER, run_id),),
    "run_file": (GET(VIEWER, run_file_ids),),
    "run_steps": (GET(VIEWER, run_id),),
    "run_replay": (GET(VIEWER, run_id),),
    "run_timeline": (GET(VIEWER, run_id),),
    "run_node": (GET(VIEWER, lambda w: {"run_id": w.run.pk, "node_id": "answer"}),),
    "run_rerun": (POST(EDITOR, run_id),),
    "run_rerun_from": (POST(EDITOR, lambda w: {"run_id": w.run.pk, "node_id": "answer"}),),
    "run_resume": (POST(EDITOR, run_id),),
    "run_approvals": (GET(VIEWER, run_id),),
    "run_breakpoints": (GET(VIEWER, run_id),),
    # Its run is paused nowhere: an editor's answer gets a 409 with the section.
    "run_breakpoint": (
        POST(
            EDITOR,
            lambda w: {"run_id": w.run.pk, "node_id": "answer"},
            lambda w: {"action": "continue"},
        ),
    ),
    # A form body is not the JSON it takes: an editor gets a 400 saying so.
    "editor_run": (POST(EDITOR, flow_id),),
    # Its run has no budget and has ended: an editor gets the section back saying so.
    "run_budget": (GET(VIEWER, run_id), POST(EDITOR, run_id, lambda w: {"budget_usd": "1"})),
    # What waits for the user (only what they may answer: none of these personas here).
    "approval_inbox": (GET(USER),),
    "approval_badge": (GET(USER),),
    # Its run waits for nothing: an editor's answer gets the section back with why.
    "run_approve": (
        GET(VIEWER, lambda w: {"run_id": w.run.pk, "node_id": "answer"}),
        POST(
            EDITOR,
            lambda w: {"run_id": w.run.pk, "node_id": "answer"},
            lambda w: {"action": "approve"},
        ),
    ),
    # ---- Accounts
    "login": (GET(PUBLIC), POST(PUBLIC, nothing, lambda w: {"username": "x", "password": "y"})),
    "logout": (POST(LOGOUT),),
    "signup": (GET(PUBLIC),),
    "settings": (GET(USER),),
    "token_create": (POST(USER, nothing, lambda w: {"name": "new"}),),
    "token_revoke": (
        GET(SELF, lambda w: {"token_id": w.token.pk}),
        POST(SELF, lambda w: {"token_id": w.token.pk}),
    ),
    # ---- Teams
    "team_list": (GET(USER), POST(USER, nothing, lambda w: {"name": "Another"})),
    "team_detail": (GET(VIEWER, team_id),),
    "team_rename": (POST(OWNER, team_id, lambda w: {"name": "Renamed"}),),
    "team_delete": (GET(OWNER, team_id), POST(OWNER, team_id)),
    "team_leave": (POST(VIEWER, team_id),),
    "team_member_role": (POST(OWNER, erin_in_team, lambda w: {"role": "editor"}),),
    "team_member_remove": (POST(OWNER, erin_in_team),),
    "team_invite": (POST(OWNER, team_id, lambda w: {"who": "dave", "role": "viewer"}),),
    "team_invite_link": (POST(OWNER, team_id, lambda w: {"role": "viewer", "days": "7"}),),
    "team_invite_revoke": (
        POST(OWNER, lambda w: {"team_id": w.team.pk, "invite_id": w.invite.pk}),
    ),
    "invitation_accept": (POST(INVITEE, lambda w: {"invite_id": w.dave_invite.pk}),),
    "invitation_decline": (POST(INVITEE, lambda w: {"invite_id": w.dave_invite.pk}),),
    "invite_join": (
        GET(USER, lambda w: {"token": w.join_token}),
        POST(USER, lambda w: {"token": w.join_token}),
    ),
    # ---- Sharing
    "flow_share": (GET(OWNER, flow_id),),
    "flow_share_create": (POST(OWNER, flow_id, lambda w: {"who": "dave", "role": "viewer"}),),
    "flow_share_update": (
        POST(
            OWNER,
            lambda w: {"flow_id": w.flow.pk, "share_id": w.share.pk},
            lambda w: {"role": "editor"},
        ),
    ),
    "flow_share_remove": (POST(OWNER, lambda w: {"flow_id": w.flow.pk, "share_id": w.share.pk}),),
    "flow_transfer": (POST(OWNER, flow_id, lambda w: {"who": "bob"}),),
    "share_accept": (POST(INVITEE, lambda w: {"share_id": w.dave_share.pk}),),
    "share_decline": (POST(INVITEE, lambda w: {"share_id": w.dave_share.pk}),),
    "flow_link_create": (POST(OWNER, flow_id),),
    "flow_link_revoke": (POST(OWNER, lambda w: {"flow_id": w.flow.pk, "link_id": w.link.pk}),),
    "run_share_link": (GET(OWNER, run_id), POST(OWNER, run_id)),
    # ---- Share links: for people without an account
    "public_share": (GET(PUBLIC, lambda w: {"token": w.link_token}),),
    "public_run": (GET(PUBLIC, lambda w: {"token": w.link_token, "run_id": w.run.pk}),),
    "public_run_events": (GET(PUBLIC, lambda w: {"token": w.link_token, "run_id": w.run.pk}),),
    # ---- The API
    "api:api-root": (GET(NOWHERE),),
    "api:openapi-json": (GET(PUBLIC),),
    "api:openapi-view": (GET(PUBLIC),),
    "api:unknown_path": (GET(NOWHERE, lambda w: {"rest": "no/such/path"}),),
    "api:flow_list": (GET(USER),),
    "api:flow_create": (
        POST(USER, nothing, lambda w: {"name": "Made by API", "graph": w.document}),
    ),
    "api:flow_detail": (GET(VIEWER, flow_id),),
    "api:flow_save": (PUT(EDITOR, flow_id, lambda w: {"graph": w.document, **current(w)}),),
    "api:run_create": (POST(EDITOR, flow_id, lambda w: {"inputs": {"input": "hi"}}),),
    "api:version_list": (GET(VIEWER, flow_id),),
    "api:version_diff": (GET(VIEWER, flow_id, lambda w: {"a": 1, "b": 2}),),
    "api:version_detail": (GET(VIEWER, lambda w: {"flow_id": w.flow.pk, "number": 1}),),
    "api:version_restore": (POST(EDITOR, lambda w: {"flow_id": w.flow.pk, "number": 1}, current),),
    "api:flow_export": (GET(VIEWER, flow_id),),
    "api:flow_publish": (PUT(EDITOR, flow_id, lambda w: {"version": 1}),),
    "api:flow_unpublish": (DELETE(EDITOR, flow_id),),
    "api:flow_publications": (GET(VIEWER, flow_id),),
    "api:hook_list": (GET(EDITOR, flow_id),),
    "api:hook_create": (POST(EDITOR, flow_id, lambda w: {"name": "New"}),),
    "api:hook_update": (PATCH(EDITOR, hook_in_flow, lambda w: {"enabled": False}),),
    "api:hook_rotate": (POST(EDITOR, hook_in_flow),),
    "api:hook_delete": (DELETE(EDITOR, hook_in_flow),),
    "api:hook_deliveries": (GET(EDITOR, hook_in_flow),),
    "api:flow_import": (POST(USER, nothing, lambda w: {"document": w.document}),),
    "api:flow_import_version": (
        POST(EDITOR, flow_id, lambda w: {"document": w.document, **current(w)}),
    ),
    "api:share_list": (GET(OWNER, flow_id),),
    "api:share_create": (POST(OWNER, flow_id, lambda w: {"user": "dave", "role": "viewer"}),),
    "api:share_update": (
        PATCH(
            OWNER,
            lambda w: {"flow_id": w.flow.pk, "share_id": w.share.pk},
            lambda w: {"role": "editor"},
        ),
    ),
    "api:share_delete": (DELETE(OWNER, lambda w: {"flow_id": w.flow.pk, "share_id": w.share.pk}),),
    "api:flow_transfer": (POST(OWNER, flow_id, lambda w: {"user": "bob"}),),
    "api:link_list": (GET(OWNER, flow_id),),
    "api:link_create": (POST(OWNER, flow_id, lambda w: {}),),
    "api:link_revoke": (DELETE(OWNER, lambda w: {"flow_id": w.flow.pk, "link_id": w.link.pk}),),
    "api:pending_share_list": (GET(USER),),
    "api:pending_share_accept": (POST(INVITEE, lambda w: {"share_id": w.dave_share.pk}),),
    "api:pending_share_decline": (POST(INVITEE, lambda w: {"share_id": w.dave_share.pk}),),
    "api:run_list": (GET(USER),),
    "api:run_compare": (GET(VIEWER, nothing, lambda w: {"a": w.run.pk, "b": w.other_run.pk}),),
    "api:run_detail": (GET(VIEWER, run_id),),
    "api:run_events": (GET(VIEWER, run_id),),
    "api:run_stream": (GET(VIEWER, run_id),),
    "api:run_cancel": (POST(EDITOR, run_id),),
    "api:run_rerun": (POST(EDITOR, run_id, lambda w: {}),),
    "api:run_rerun_from": (POST(EDITOR, run_id, lambda w: {"node": "answer"}),),
    "api:run_resume": (POST(EDITOR, run_id),),
    # Its run waits for nothing, so an editor's answer is a 409: past the permission check.
    "api:run_approve": (
        POST(
            EDITOR,
            lambda w: {"run_id": w.run.pk, "node": "answer"},
            lambda w: {"action": "approve"},
        ),
    ),
    "api:approval_list": (GET(USER),),
    # The run has ended: an editor's raise is a 409, past the permission check.
    "api:run_budget": (POST(EDITOR, run_id, lambda w: {"budget_usd": 1}),),
    "api:run_estimate": (POST(EDITOR, flow_id, lambda w: {"inputs": {}}),),
    "api:flow_budget": (PUT(EDITOR, flow_id, lambda w: {"budget_usd": 1}),),
    "api:team_list": (GET(USER),),
    "api:team_create": (POST(USER, nothing, lambda w: {"name": "Another"}),),
    "api:invitation_list": (GET(USER),),
    "api:invitation_accept": (POST(INVITEE, lambda w: {"invite_id": w.dave_invite.pk}),),
    "api:invitation_decline": (POST(INVITEE, lambda w: {"invite_id": w.dave_invite.pk}),),
    "api:team_join": (POST(USER, nothing, lambda w: {"token": w.join_token}),),
    "api:team_detail": (GET(VIEWER, team_id),),
    "api:team_rename": (PATCH(OWNER, team_id, lambda w: {"name": "Renamed"}),),
    "api:team_delete": (DELETE(OWNER, team_id),),
    "api:member_list": (GET(VIEWER, team_id),),
    "api:member_role": (PATCH(OWNER, erin_in_team, lambda w: {"role": "editor"}),),
    "api:member_remove": (DELETE(OWNER, erin_in_team),),
    "api:team_leave": (POST(VIEWER, team_id),),
    "api:invite_list": (GET(OWNER, team_id),),
    "api:invite_create": (POST(OWNER, team_id, lambda w: {"user": "dave"}),),
    "api:invite_revoke": (
        DELETE(OWNER, lambda w: {"team_id": w.team.pk, "invite_id": w.invite.pk}),
    ),
    "api:editor_ports": (
        POST(USER, nothing, lambda w: {"type": "input", "config": {"name": "x"}}),
    ),
    "api:editor_layout": (POST(USER, nothing, lambda w: {"graph": w.document}),),
    # ---- Chat: links (editors), the panel (each conversation its maker's), a link's page
    "api:chat_link_list": (GET(EDITOR, flow_id),),
    "api:chat_link_create": (POST(EDITOR, flow_id, lambda w: {"name": "New"}),),
    "api:chat_link_update": (PATCH(EDITOR, chat_link_id, lambda w: {"per_minute": 5}),),
    "api:chat_link_delete": (DELETE(EDITOR, chat_link_id),),
    "flow_chat_links": (GET(EDITOR, flow_id), POST(EDITOR, flow_id, lambda w: {"name": "x"})),
    "flow_chat_link_toggle": (POST(EDITOR, chat_link_id),),
    "flow_chat_link_delete": (POST(EDITOR, chat_link_id),),
    "chat_panel_send": (POST(EDITOR, flow_id, lambda w: {"message": "hi"}),),
    "chat_panel_stream": (GET(SELF, panel_reply),),
    "chat_embed": (GET(PUBLIC),),
    "chat_page": (GET(PUBLIC, lambda w: {"token": w.chat_link.token}),),
    "chat_messages": (POST(PUBLIC, lambda w: {"token": w.chat_link.token}),),
    "chat_conversation": (
        GET(
            PUBLIC,
            lambda w: {"token": w.chat_link.token, "conversation_id": w.visit.conversation_id},
            headers=as_visitor,
        ),
    ),
    "chat_reply_stream": (GET(PUBLIC, visit_reply, headers=as_visitor),),
    "api:editor_validate": (POST(USER, nothing, lambda w: {"graph": w.document}),),
    "api:editor_rename": (
        POST(USER, nothing, lambda w: {"graph": w.document, "node": "input", "key": "first"}),
    ),
    "api:editor_rename_port": (
        POST(
            USER,
            nothing,
            lambda w: {"graph": w.document, "node": "output", "port": "value", "name": "y"},
        ),
    ),
    # ---- Schedules (pages and API)
    "flow_schedules": (GET(VIEWER, flow_id),),
    "flow_schedule_create": (POST(EDITOR, flow_id, lambda w: {"cron": "0 * * * *"}),),
    "flow_schedule_ticks": (GET(VIEWER, schedule_ids),),
    "flow_schedule_toggle": (POST(EDITOR, schedule_ids, lambda w: {"enabled": "0"}),),
    "flow_schedule_delete": (POST(EDITOR, schedule_ids),),
    "api:schedule_list": (GET(VIEWER, flow_id),),
    "api:schedule_create": (POST(EDITOR, flow_id, lambda w: {"cron": "0 * * * *"}),),
    "api:schedule_detail": (GET(VIEWER, schedule_ids),),
    "api:schedule_update": (PATCH(EDITOR, schedule_ids, lambda w: {"enabled": False}),),
    "api:schedule_delete": (DELETE(EDITOR, schedule_ids),),
    "api:schedule_ticks": (GET(VIEWER, schedule_ids),),
    # ---- Credentials: each lists what its caller may use; the team's owners change them
    "credential_list": (GET(USER),),
    "credential_create": (POST(OWNER, nothing, new_team_credential),),
    "credential_delete": (POST(OWNER, credential_id),),
    "api:credential_list": (GET(USER),),
    "api:credential_create": (POST(OWNER, nothing, new_team_credential),),
    "api:credential_delete": (DELETE(OWNER, credential_id),),
    # ---- MCP servers: as credentials; the team's editors also refresh their tools
    "mcp_server_list": (GET(USER),),
    "mcp_server_create": (POST(OWNER, nothing, new_team_mcp_server),),
    "mcp_server_refresh": (POST(EDITOR, mcp_server_id),),
    "mcp_server_delete": (POST(OWNER, mcp_server_id),),
    "api:mcp_server_list": (GET(USER),),
    "api:mcp_server_create": (POST(OWNER, nothing, new_team_mcp_server),),
    "api:mcp_server_refresh": (POST(EDITOR, mcp_server_id),),
    "api:mcp_server_delete": (DELETE(OWNER, mcp_server_id),),
}


# ---- Walking the URL configuration -------------------------------------------------------


def route_names(resolver: URLResolver | None = None, namespace: str = "") -> Iterator[str]:
    """Every route's name (``namespace:name``), or its pattern when it has none."""
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            inner = entry.namespace or ""
            prefix = f"{namespace}:{inner}" if namespace and inner else namespace or inner
            yield from route_names(entry, prefix)
        elif isinstance(entry, URLPattern):
            name = entry.name or f"<unnamed {entry.pattern}>"
            yield f"{namespace}:{name}" if namespace else name


def test_every_route_is_in_the_table() -> None:
    found = set(route_names())
    assert sorted(found - set(ROUTES)) == [], "routes the permission matrix does not check"
    assert sorted(set(ROUTES) - found) == [], "routes in the matrix that no longer exist"


def test_the_walk_sees_the_api_and_the_pages() -> None:
    names = set(route_names())
    assert {"flow_editor", "api:flow_save", "api:team_detail", "public_share"} <= names


# ---- The requests ------------------------------------------------------------------------


def expected(check: Check, persona: str, api: bool) -> str:
    """What `persona` must get: ok, login (a page's redirect), 401, 403 or 404."""
    if check.need == PUBLIC:
        return "ok"
    if check.need == LOGOUT:
        return "login"
    if check.need == NOWHERE:
        return "404"
    if check.need == SIGNED:
        return "401"
    if persona == "anonymous":
        return "401" if api else "login"
    if check.need == USER:
        return "ok"
    if check.need == SELF:
        return "ok" if persona == "alice" else "404"
    if check.need == INVITEE:
        return "ok" if persona == "dave" else "404"
    role = ROLE.get(persona)
    if role is None:
        return "404"
    return "ok" if Role.rank(role) >= Role.rank(check.need) else "403"


def outcome(response: HttpResponse, api: bool) -> str:
    status = response.status_code
    if status == 302 and response.headers.get("Location", "").startswith("/login/"):
        return "login"
    if status in (401, 403, 404, 405) or status >= 500:
        return str(status)
    return "ok"


def ask(w: World, name: str, check: Check, persona: str, auth: str) -> HttpResponse:
    """The request, as `persona` with a session, or with an API token (``bearer``; the
    anonymous caller then sends one that does not exist)."""
    client = Client()
    if auth == "bearer":
        raw = "sy_no-such-token"
        if persona != "anonymous":
            raw = ApiToken.issue(w.users[persona], "matrix")[1]
        client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {raw}"
    elif persona != "anonymous":
        client.force_login(w.users[persona])
    for header, value in check.headers(w).items():
        client.defaults[f"HTTP_{header.upper().replace('-', '_')}"] = value
    url = reverse(name, kwargs=check.kwargs(w) or None)
    api = name.startswith("api:")
    if check.method == "GET":
        return client.get(url, check.query(w))
    if api:
        return client.generic(
            check.method, url, json.dumps(check.body(w)), content_type="application/json"
        )
    assert check.method == "POST", "pages take forms: GET or POST"
    return client.post(url, check.body(w))


@dataclass
class Finding:
    persona: str
    method: str
    expected: str
    got: str
    status: int
    detail: str = field(default="")


# Routes that reach channels' database_sync_to_async (the run driver's cancel), which
# closes a connection it finds inside a transaction: they get a transactional database
# and no savepoint. None of them changes what the next persona meets.
OUTSIDE_TRANSACTION = {"api:run_cancel"}


def route_params() -> list[Any]:
    """Each route with a session; the API's also with a token."""
    params = []
    for name in sorted(ROUTES):
        marks = [pytest.mark.django_db(transaction=True)] if name in OUTSIDE_TRANSACTION else []
        for auth in ("session", "bearer") if name.startswith("api:") else ("session",):
            params.append(pytest.param(name, auth, marks=marks, id=f"{name}-{auth}"))
    return params


@pytest.mark.parametrize(("name", "auth"), route_params())
def test_route_answers_each_persona_as_their_role_allows(
    world: World, name: str, auth: str
) -> None:
    wrong: list[Finding] = []
    api = name.startswith("api:")
    for check in ROUTES[name]:
        for persona in PERSONAS:
            if name in OUTSIDE_TRANSACTION:
                response = ask(world, name, check, persona, auth)
            else:
                with transaction.atomic():
                    response = ask(world, name, check, persona, auth)
                    transaction.set_rollback(True)
            want, got = expected(check, persona, api), outcome(response, api)
            if want != got:
                detail = response.content[:200].decode(errors="replace")
                wrong.append(
                    Finding(persona, check.method, want, got, response.status_code, detail)
                )
    assert wrong == []


# ---- The websockets ----------------------------------------------------------------------


@sync_to_async
def session_for(user) -> tuple[bytes, bytes]:
    client = Client()
    client.force_login(user)
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


async def socket_opens(path: str, user) -> bool:
    headers = [(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000")]
    if user is not None:
        headers.append(await session_for(user))
    ws = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await ws.connect()
    if connected:
        await ws.disconnect()
    return connected


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("socket", ["run", "flow"])
async def test_each_socket_opens_for_viewers_and_up_only(socket: str) -> None:
    w = await sync_to_async(build_world)()
    path = f"/ws/runs/{w.run.pk}/" if socket == "run" else f"/ws/flows/{w.flow.pk}/"
    opened = {persona: await socket_opens(path, w.users.get(persona)) for persona in PERSONAS}
    assert opened == {
        "anonymous": False,
        "dave": False,
        "carol": True,
        "bob": True,
        "alice": True,
    }
