"""Django admin for the federation's centres: sites (with their connection), partitions, applications.

A Slurm centre's token is write-only here too: the form has an empty password field that replaces the
stored token when filled (through the connection service, which audits that it changed, never its value).
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import widgets
from django.db import models
from django.utils.translation import gettext_lazy as _

from accounts.actors import Actor
from federation.models import AdapterKind, Application, Partition, Site, SlurmTokenSource
from portal.errors import ApplicationError


class PartitionInline(admin.TabularInline):
    model = Partition
    extra = 0
    fields = ["name", "remote_name", "ecosystem", "family", "accelerator_model", "nodes", "cores_per_node",
              "memory_mb_per_node", "gpus_per_node", "max_walltime_s", "price_core_hour", "price_card_hour"]


def _formfield(field, **kwargs):
    if isinstance(field, models.URLField):
        kwargs.setdefault("assume_scheme", "http")  # slurmrestd is plain HTTP on a private network
    return field.formfield(**kwargs)


class SiteAdminForm(forms.ModelForm):
    new_token = forms.CharField(
        label=_("Slurm token"), required=False, max_length=4096, strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_("Write-only: leave empty to keep the stored token. It is never shown again."))

    class Meta:
        model = Site
        formfield_callback = _formfield
        fields = ["code", "name", "city", "exchange_rate", "price_schedule", "adapter",
                  "slurm_url", "slurm_user", "slurm_token_source", "slurm_credential_path", "slurm_workdir"]

    def clean(self):
        data = super().clean()
        if data.get("adapter") == AdapterKind.SLURM:
            for field in ("slurm_url", "slurm_user", "slurm_token_source"):
                if not data.get(field):
                    self.add_error(field, _("Required for a Slurm centre."))
            source = data.get("slurm_token_source")
            if source in (SlurmTokenSource.TOKEN_FILE, SlurmTokenSource.JWT_KEY) \
                    and not (data.get("slurm_credential_path") or "").startswith("/"):
                self.add_error("slurm_credential_path", _("An absolute path on the federation's servers."))
            if source == SlurmTokenSource.TOKEN and not data.get("new_token") \
                    and not (self.instance.pk and self.instance.slurm_token):
                self.add_error("new_token", _("Give the token (it is stored and never shown again)."))
        return data


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    form = SiteAdminForm
    formfield_overrides = {models.URLField: {"widget": widgets.AdminURLFieldWidget, "assume_scheme": "http"}}
    list_display = ["code", "name", "city", "state", "adapter", "slurm_url", "heartbeat_at"]
    list_filter = ["state", "adapter"]
    search_fields = ["code", "name", "city"]
    inlines = [PartitionInline]
    # A centre's state changes only through the operators' actions (site_set_state: re-routing, quota
    # rebalance, live update, audit), never by editing the row here.
    readonly_fields = ["state", "state_reason", "heartbeat_at", "created_at", "token_stored"]
    fieldsets = [
        (None, {"fields": ["code", "name", "city", "state", "state_reason", "exchange_rate", "price_schedule",
                           "heartbeat_at", "created_at"]}),
        (_("Connection"), {"fields": ["adapter", "slurm_url", "slurm_user", "slurm_token_source", "new_token",
                                      "token_stored", "slurm_credential_path", "slurm_workdir"]}),
    ]

    @admin.display(description=_("Token stored"), boolean=True)
    def token_stored(self, obj) -> bool:
        return bool(obj and obj.slurm_token)

    def save_model(self, request, obj, form, change):
        """The connection goes through its service (validated, audited, token redacted); the rest is the row."""
        from federation.slurm_services import CONNECTION_FIELDS, site_configure_connection

        wanted = {f: form.cleaned_data.get(f) for f in CONNECTION_FIELDS}
        if change:
            stored = Site.objects.filter(pk=obj.pk).values(*CONNECTION_FIELDS).get()
        else:
            stored = {f: Site._meta.get_field(f).get_default() for f in CONNECTION_FIELDS}
        for field, value in stored.items():
            setattr(obj, field, value)
        super().save_model(request, obj, form, change)
        try:
            site_configure_connection(actor=Actor(user=request.user), site=obj,
                                      token=form.cleaned_data.get("new_token") or None, **wanted)
        except ApplicationError as exc:
            messages.error(request, exc.message)


@admin.register(Application)
class ApplicationAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "category"]
    search_fields = ["code", "name"]
    fields = ["code", "name", "category", "description", "ecosystems", "launch_script", "partitions"]
    filter_horizontal = ["partitions"]
