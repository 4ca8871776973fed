"""Forms of the site-quota pages: a centre's answer to a proposed share, a PI's transfer between centres."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _


class QuotaResponseForm(forms.Form):
    action = forms.ChoiceField(choices=[("accept", _("Accept")), ("modify", _("Lower to")),
                                        ("decline", _("Decline"))])
    amount = forms.IntegerField(label=_("Amount"), min_value=0, required=False,
                                widget=forms.NumberInput(attrs={"min": 0, "step": 1, "inputmode": "numeric"}))
    reason = forms.CharField(label=_("Reason"), max_length=500, required=False)

    def clean(self):
        data = super().clean()
        if data.get("action") == "modify" and data.get("amount") is None:
            self.add_error("amount", _("Enter the amount the centre accepts."))
        if data.get("action") == "decline" and not (data.get("reason") or "").strip():
            self.add_error("reason", _("Say why the centre declines the share."))
        return data


class QuotaTransferForm(forms.Form):
    resource_class = forms.ChoiceField(label=_("Resource class"))
    from_site = forms.ChoiceField(label=_("From centre"))
    to_site = forms.ChoiceField(label=_("To centre"))
    amount = forms.IntegerField(label=_("Amount"), min_value=1,
                                widget=forms.NumberInput(attrs={"min": 1, "step": 1, "inputmode": "numeric"}))
    reason = forms.CharField(label=_("Reason"), max_length=300, required=False)

    def __init__(self, *args, classes=(), from_sites=(), to_sites=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["resource_class"].choices = list(classes)
        self.fields["from_site"].choices = list(from_sites)
        self.fields["to_site"].choices = list(to_sites)

    def clean(self):
        data = super().clean()
        if data.get("from_site") and data.get("from_site") == data.get("to_site"):
            self.add_error("to_site", _("Choose another centre."))
        return data
