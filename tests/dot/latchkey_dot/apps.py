"""Registers the signal that gives dynamically registered clients RS256 ID tokens."""

from django.apps import AppConfig


class LatchkeyDotConfig(AppConfig):
    name = "latchkey_dot"

    def ready(self):
        from django.db.models.signals import pre_save
        from oauth2_provider.models import get_application_model

        def rs256_by_default(sender, instance, **kwargs):
            # Dynamic registration leaves the signing algorithm empty (no ID tokens).
            if not instance.algorithm:
                instance.algorithm = sender.RS256_ALGORITHM

        pre_save.connect(rs256_by_default, sender=get_application_model(), weak=False)
