"""``POST /hooks/<token>``: a signed delivery starts a run of the hook's flow.

The answer is problem details for every refusal, and nothing starts then:

- 404: no enabled hook has this token (a disabled or deleted hook looks the same);
- 401: the signature or timestamp is missing or wrong (see ``service``);
- 413: the body is over ``SWITCHYARD_WEBHOOK_MAX_BODY_BYTES``, answered before it is read
  in full (webapp/bodylimit.py);
- 429 with ``Retry-After``: the hook's deliveries a minute are used up;
- 400/415: the body is not a JSON object, or its fields do not make the flow's inputs.

Otherwise 202 with the run; ``?wait=S`` (0-300) waits for it as the run API does: 200 with
its outputs when it ends in time. The run is of the published version (else the newest),
started as the hook's maker, whose right to edit the flow is checked at each delivery.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from graphs.errors import FlowInvalid
from webapp import problems
from webapp.execution.plans import VersionCannotRun
from webapp.flows.access import can_edit_flow
from webapp.flows.models import Webhook
from webapp.flows.webhooks import service
from webapp.flows.webhooks.service import HookRefused
from webapp.runs import answers, follow
from webapp.runs.limits import RunRefused
from webapp.runs.models import Run
from webapp.runs.services import create_run, version_for_outside

MAX_WAIT_S = 300


@csrf_exempt
async def receive(request: HttpRequest, token: str) -> HttpResponse:
    if request.method != "POST":
        answer = problems.response(405, "method_not_allowed", "deliveries are POSTed")
        answer["Allow"] = "POST"
        return answer
    hook = await sync_to_async(service.hook_for)(token)
    if hook is None or not hook.enabled:
        return problems.response(404, "not_found", "no such hook")
    try:
        wait = _wait(request.GET.get("wait"))
        wrong = service.check_signature(
            hook.secret,
            request.headers.get("X-Switchyard-Timestamp"),
            request.headers.get("X-Switchyard-Signature"),
            request.body,
            now=service.clock(),
        )
        if wrong:
            raise HookRefused(401, "bad_signature", wrong)
        run = await sync_to_async(_start)(hook, request.body, request.content_type or "")
    except HookRefused as refused:
        await sync_to_async(service.record)(hook, refused.status, refused.detail)
        answer = problems.response(refused.status, refused.code, refused.detail)
        if refused.retry_after is not None:
            answer["Retry-After"] = str(refused.retry_after)
        return answer
    if wait is not None and await follow.until_finished(run.pk, wait):
        status, body = 200, await sync_to_async(answers.ended)(run.pk)
    else:
        status, body = 202, await sync_to_async(answers.started)(run)
    await sync_to_async(service.record)(hook, status, run_id=run.pk)
    return JsonResponse(body, status=status)


def _wait(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        wait = float(raw)
    except ValueError:
        wait = -1.0
    if not 0 <= wait <= MAX_WAIT_S:
        raise HookRefused(400, "bad_wait", f"wait must be seconds from 0 to {MAX_WAIT_S}")
    return min(wait, settings.RUN_WAIT_MAX_S)


def _start(hook: Webhook, body: bytes, content_type: str) -> Run:
    service.take_slot(hook)
    if not can_edit_flow(hook.created_by, hook.flow_id):
        raise HookRefused(
            403,
            "hook_owner_lost_access",
            "the hook's maker can no longer edit the flow: an editor must make a new hook",
        )
    try:
        inputs = service.inputs_from(hook, body, content_type)
        return create_run(
            hook.flow,
            hook.created_by,
            inputs,
            version=version_for_outside(hook.flow),
            trigger=Run.Trigger.WEBHOOK,
        )
    except VersionCannotRun as exc:
        # Saved unfinished: the version names its problems.
        raise HookRefused(400, "invalid_flow", f"the run cannot start: {exc}") from None
    except FlowInvalid as exc:
        detail = "; ".join(str(p) for p in exc.problems)
        raise HookRefused(400, "invalid_inputs", f"the run cannot start: {detail}") from None
    except RunRefused as exc:
        raise HookRefused(exc.status, exc.code, str(exc)) from None


def hook_url(request: HttpRequest, hook: Webhook) -> str:
    return request.build_absolute_uri(f"/hooks/{hook.token}")
