"""Re-encrypt every credential with the first of SWITCHYARD_CREDENTIAL_KEYS.

Rotation: put a new key first (``NEW,OLD``), restart, run this, then drop ``OLD``.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from webapp.credentials import service


class Command(BaseCommand):
    help = "Re-encrypt every stored credential with the first SWITCHYARD_CREDENTIAL_KEYS key."

    def handle(self, *args: object, **options: object) -> None:
        count = service.rotate_all()
        self.stdout.write(f"re-encrypted {count} credential{'s' if count != 1 else ''}")
