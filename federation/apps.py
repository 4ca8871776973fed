import os

from django.apps import AppConfig


class FederationConfig(AppConfig):
    name = "federation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.conf import settings

        # `make run` sets SUANWANG_TICK_SITES=1: the embedded server ticks the simulated centres.
        if os.environ.get("SUANWANG_TICK_SITES") == "1" and settings.SUANWANG["SIMULATED_SITES_IN_PROCESS"]:
            from federation import ticker

            ticker.start_in_process()
