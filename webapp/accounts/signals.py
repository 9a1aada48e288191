"""Every new user gets the example flows."""

from django.conf import settings
from django.db.models.signals import post_save
from django.dispatch import receiver


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def give_examples(sender, instance, created: bool, raw: bool = False, **kwargs) -> None:
    if created and not raw:
        from webapp.flows.examples import give_examples_to

        give_examples_to(instance)
