"""Portal forms: they check the shape of input (lengths, formats, choices); services check the rules."""

from django import forms
from django.contrib.auth import forms as auth_forms
from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _

from accounts.models import InstitutionKind, InstitutionRole, TokenScope, normalize_email


class LoginForm(auth_forms.AuthenticationForm):
    """Email + password (the User model logs in by email)."""

    username = forms.EmailField(
        label=_("Email"),
        max_length=254,
        widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"}),
    )

    error_messages = {
        **auth_forms.AuthenticationForm.error_messages,
        "invalid_login": _("The email address or password is not correct."),
    }


class InvitationAwarePasswordResetForm(auth_forms.PasswordResetForm):
    """Also mail a link to people who were added but never chose a password.

    Django skips users with an unusable password; here those are invited members whose
    invitation link may have expired, and "forgot password" is how they get a new one.
    """

    def get_users(self, email):
        user_model = get_user_model()
        return user_model._default_manager.filter(email__iexact=normalize_email(email), is_active=True)


class MemberAddForm(forms.Form):
    email = forms.EmailField(label=_("Email"), max_length=254)
    full_name = forms.CharField(label=_("Full name"), max_length=150, required=False)
    role = forms.ChoiceField(label=_("Role"), choices=InstitutionRole.choices, initial=InstitutionRole.RESEARCHER)


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(label=_("Role"), choices=InstitutionRole.choices)


class TokenCreateForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100, help_text=_("For example: campus job gateway"))
    scopes = forms.MultipleChoiceField(
        label=_("Scopes"),
        choices=TokenScope.choices,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": _("Choose at least one scope.")},
    )
    expires_on = forms.DateField(
        label=_("Expires on"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text=_("Optional. The token stops working at the end of this day (Beijing time)."),
    )


class InstitutionCreateForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=200)
    code = forms.CharField(label=_("Short code"), max_length=32, help_text=_("Letters, digits and hyphens, e.g. PKU"))
    kind = forms.ChoiceField(label=_("Kind"), choices=InstitutionKind.choices)
    email_domains = forms.CharField(
        label=_("Email domains"),
        max_length=2000,
        required=False,
        help_text=_("Comma-separated, e.g. pku.edu.cn, stu.pku.edu.cn"),
    )

    def clean_email_domains(self) -> list[str]:
        raw = self.cleaned_data.get("email_domains") or ""
        return [part.strip() for part in raw.replace("，", ",").split(",") if part.strip()]


class AuditFilterForm(forms.Form):
    action = forms.ChoiceField(label=_("Action"), required=False)

    def __init__(self, *args, actions: list[tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["action"].choices = [("", _("All actions")), *actions]
