import os

from django.apps import AppConfig


class FederationConfig(AppConfig):
    name = "federation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.conf import settings

        from allocations.signals import allocation_awarded, quota_usage
        from federation import quotas

        # Awards are brokered into site quotas in the award's transaction (allocations imports no federation),
        # and the ledger's holds and charges at a centre keep the shares' use counters.
        allocation_awarded.connect(quotas._on_award, dispatch_uid="federation.quotas.on_award")
        quota_usage.connect(quotas._on_usage, dispatch_uid="federation.quotas.on_usage")

        # `make run` sets SUANWANG_TICK_SITES=1: the embedded server ticks the simulated centres.
        if os.environ.get("SUANWANG_TICK_SITES") == "1" and settings.SUANWANG["SIMULATED_SITES_IN_PROCESS"]:
            from federation import ticker

            ticker.start_in_process()
