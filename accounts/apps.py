from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.db.models.signals import post_delete, post_save

        from accounts.models import ApiToken, Institution

        post_save.connect(_token_changed, sender=ApiToken, dispatch_uid="accounts.token_cache.token_saved")
        post_delete.connect(_token_changed, sender=ApiToken, dispatch_uid="accounts.token_cache.token_deleted")
        post_save.connect(_institution_changed, sender=Institution,
                          dispatch_uid="accounts.token_cache.institution_saved")


def _token_changed(sender, instance, created=False, **kwargs):
    """A token changed (revoked, edited, deleted): its cached copy must not answer again."""
    from accounts.services import token_cache_invalidate

    if not created:  # a new token has no cached copy yet
        token_cache_invalidate([instance])


def _institution_changed(sender, instance, created=False, **kwargs):
    """An institution changed (deactivated, renamed): its tokens' cached copies carry the old one."""
    from accounts.models import ApiToken
    from accounts.services import token_cache_invalidate

    if not created:
        token_cache_invalidate(ApiToken.objects.filter(institution=instance).only("prefix", "secret_hash"))
