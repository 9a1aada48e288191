"""Files as run inputs: checked, stored under the run, lent to its engine by reference.

A run's files come base64 in a JSON body's ``files`` (input name → file name and base64
bytes) or as parts of a multipart body (``webapp.runs.uploads``: input name → ``Sent``).
Both are checked alike before anything is stored: each at most ``RUN_FILE_MAX_BYTES``,
all together ``RUN_FILES_MAX_BYTES``, of a media type sniffed from the bytes (the
client's word is not taken): PNG, JPEG, GIF, WebP, PDF, or UTF-8 text. What is wrong
raises ``FileRefused`` naming the input. A stored file is a ``RunFile`` (bytes in the
database); the run's input holds its reference (``graphs.files``), and its size counts in
the run's stored bytes.

A file's name is kept for people only, sanitised to letters, digits, ``.``, ``_`` and
``-`` (at most 100 characters, no leading dot); it never names anything on disk.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

from graphs import files as engine_files
from webapp.runs.models import Run, RunFile

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# Control characters other than tab, newline, form feed and carriage return: not text.
_BINARY = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


class FileRefused(ValueError):
    """A file input that cannot be taken; the text names the input."""


@dataclass(frozen=True)
class Upload:
    input_name: str
    name: str
    data: bytes
    media_type: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def ref(self, file_id: int | None) -> dict[str, Any]:
        return engine_files.ref(
            file_id or 0, self.name, self.media_type, len(self.data), self.sha256
        )


def safe_name(name: str) -> str:
    """A file name people can read and nothing can misread.

    >>> safe_name("../../etc/passwd"), safe_name("My cat (1).PNG"), safe_name("")
    ('passwd', 'My_cat_1_.PNG', 'file')
    """
    cleaned = _UNSAFE.sub("_", name.replace("\\", "/").rsplit("/", 1)[-1]).lstrip("._")
    return cleaned[:100] or "file"


def sniff(data: bytes) -> str | None:
    """The media type the bytes are, of those a run takes; None for anything else.

    >>> sniff(b"\\x89PNG\\r\\n\\x1a\\n...."), sniff(b"%PDF-1.7")
    ('image/png', 'application/pdf')
    >>> sniff(b"hello"), sniff(b"\\x00\\x01")
    ('text/plain', None)
    """
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return "text/plain" if text and not _BINARY.search(text) else None


@dataclass(frozen=True)
class Sent:
    """A file as it arrived: the name its sender gave, and its bytes."""

    name: str
    data: bytes


def decoded(files: dict[str, Any]) -> dict[str, Sent]:
    """A JSON body's ``files`` ({input: {"name", "data" base64}}) as bytes."""
    if not isinstance(files, dict):
        raise FileRefused("files must be an object: {input name: {name, data}}")
    found = {}
    for input_name, sent in files.items():
        if not isinstance(sent, dict) or not isinstance(sent.get("data"), str):
            raise FileRefused(f"file input {input_name!r}: expected {{name, data (base64)}}")
        try:
            data = base64.b64decode(sent["data"], validate=True)
        except (binascii.Error, ValueError):
            raise FileRefused(f"file input {input_name!r}: data is not valid base64") from None
        found[str(input_name)] = Sent(str(sent.get("name") or ""), data)
    return found


def check(files: dict[str, Any] | None, sent: dict[str, Sent] | None = None) -> list[Upload]:
    """The uploads of a run's ``files`` ({input: {"name", "data" base64}}) and of the files
    ``sent`` as bytes (multipart), checked together."""
    both = decoded(files) if files else {}
    twice = set(both) & set(sent or {})
    if twice:
        raise FileRefused(f"file input {sorted(twice)[0]!r} is sent twice")
    both.update(sent or {})
    per_file, per_run = settings.RUN_FILE_MAX_BYTES, settings.RUN_FILES_MAX_BYTES
    uploads, total = [], 0
    for input_name, one in both.items():
        data = one.data
        if per_file and len(data) > per_file:
            raise FileRefused(
                f"file input {input_name!r} is {len(data)} bytes: the limit is {per_file} "
                "bytes per file"
            )
        total += len(data)
        if per_run and total > per_run:
            raise FileRefused(
                f"file input {input_name!r} takes the run's files past {per_run} bytes, "
                "the limit per run"
            )
        media_type = sniff(data)
        if media_type is None:
            allowed = ", ".join(engine_files.MEDIA_TYPES)
            raise FileRefused(
                f"file input {input_name!r} is not a file a run takes (allowed: {allowed})"
            )
        uploads.append(Upload(input_name, safe_name(one.name), data, media_type))
    return uploads


def refs(uploads: list[Upload]) -> dict[str, dict[str, Any]]:
    """The inputs the uploads are, before they are stored (their ids not yet known)."""
    return {u.input_name: u.ref(None) for u in uploads}


def store(run: Run, uploads: list[Upload]) -> int:
    """Store the uploads under ``run`` and point its inputs at them; their bytes."""
    for upload in uploads:
        row = RunFile.objects.create(
            run=run,
            input_name=upload.input_name,
            name=upload.name,
            media_type=upload.media_type,
            size=len(upload.data),
            sha256=upload.sha256,
            data=upload.data,
        )
        run.inputs[upload.input_name] = upload.ref(row.pk)
    return sum(len(u.data) for u in uploads)


def file_inputs(run: Run) -> list[dict[str, Any]]:
    """The run's inputs that are files, as the run page shows them."""
    inputs = run.inputs if isinstance(run.inputs, dict) else {}
    return [
        {"input": name, **value} for name, value in inputs.items() if engine_files.is_ref(value)
    ]


class HeldFiles:
    """Files not stored, lent by their references while held in memory (an estimate's)."""

    def __init__(self, uploads: list[Upload]):
        self.by_sha = {u.sha256: u.data for u in uploads}

    async def read(self, ref: Any) -> bytes:
        data = self.by_sha.get(ref.get("sha256"))
        if data is None:
            raise engine_files.FileError(f"file {ref.get('name')!r} was not sent")
        return data


class RunFiles:
    """The files a run's prompts may read: those stored under a run of its flow (a re-run
    keeps its parent's references). A reference to anything else is refused, so a value
    typed to look like a reference reads nothing of another flow."""

    def __init__(self, flow_id: int):
        self.flow_id = flow_id

    async def read(self, ref: Any) -> bytes:
        return await sync_to_async(self._read)(ref)

    def _read(self, ref: Any) -> bytes:
        row = (
            RunFile.objects.filter(
                pk=ref.get("file"), sha256=ref.get("sha256"), run__flow_id=self.flow_id
            )
            .values_list("data", flat=True)
            .first()
        )
        if row is None:
            raise engine_files.FileError(
                f"file {ref.get('name')!r} is not one of this flow's run files"
            )
        return bytes(row)
