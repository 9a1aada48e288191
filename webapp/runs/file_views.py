"""A run's file inputs, for those who may see the run (strangers: 404)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse

from graphs.files import IMAGE_TYPES
from webapp.runs.access import run_for_viewer
from webapp.runs.files import file_inputs
from webapp.runs.models import RunFile


@login_required
def run_file(request: HttpRequest, run_id: int, file_id: int) -> HttpResponse:
    """One of the run's file inputs (a re-run's may be stored under its parent): images
    inline, as the thumbnail on the run page, anything else as a download. The stored
    media type was sniffed from the bytes, and nosniff and a sandbox keep it that."""
    run = run_for_viewer(request.user, run_id)
    if file_id not in {ref["file"] for ref in file_inputs(run)}:
        raise Http404("No such file.")
    row = RunFile.objects.filter(pk=file_id, run__flow_id=run.flow_id).first()
    if row is None:
        raise Http404("No such file.")
    inline = row.media_type in IMAGE_TYPES
    content_type = row.media_type + ("; charset=utf-8" if row.media_type == "text/plain" else "")
    response = HttpResponse(bytes(row.data), content_type=content_type)
    # The name is sanitised (letters, digits, . _ -): nothing in it can end the quotes.
    disposition = "inline" if inline else "attachment"
    response["Content-Disposition"] = f'{disposition}; filename="{row.name}"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, max-age=3600"
    return response
