from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Suanwang portal"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from portal.api import schema  # noqa: F401  (registers OpenAPI extensions)
