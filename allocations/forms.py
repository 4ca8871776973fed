"""Forms of the allocation pages: they check the shape of input (types, lengths, choices, signs);
the services check the rules (tier caps, dates within the project, who may do what)."""

import re

from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from accounts.models import normalize_email
from allocations.models import (
    Decision,
    Discipline,
    LedgerKind,
    RequestKind,
    RequestState,
    ResourceClass,
    ResourceKind,
    Tier,
)

DATE_WIDGET = {"type": "date"}
MAX_UNITS = 10**12


def class_label(rc: ResourceClass) -> str:
    """CPU and storage by their translated kind; GPU classes by the card's own name (NVIDIA V100)."""
    if rc.kind in (ResourceKind.CPU, ResourceKind.STORAGE):
        return str(ResourceKind(rc.kind).label)
    return rc.name


def amount_field_name(code: str) -> str:
    """A form field name for a resource class code (``gpu:v100`` → ``amount__gpu__v100``)."""
    return "amount__" + code.replace(":", "__")


def date_field(label) -> forms.DateField:
    return forms.DateField(label=label, widget=forms.DateInput(attrs=DATE_WIDGET, format="%Y-%m-%d"))


class AmountsMixin:
    """One whole-number field per resource class, in real units; blank or 0 means none of that class."""

    amount_errors: list

    def add_amount_fields(self, classes: list[ResourceClass], initial: dict | None = None) -> None:
        self.amount_errors = []
        self.amount_classes = list(classes)
        initial = initial or {}
        for rc in self.amount_classes:
            self.fields[amount_field_name(rc.code)] = forms.IntegerField(
                label=class_label(rc),
                required=False,
                min_value=0,
                max_value=MAX_UNITS,
                initial=initial.get(rc.code),
                error_messages={"min_value": _("Amounts cannot be negative.")},
                widget=forms.NumberInput(
                    attrs={
                        "min": "0",
                        "step": "1",
                        "inputmode": "numeric",
                        "class": "amount-input",
                        "data-resource-class": rc.code,
                    }
                ),
            )

    def amount_fields(self) -> list[tuple[ResourceClass, forms.BoundField]]:
        return [(rc, self[amount_field_name(rc.code)]) for rc in self.amount_classes]

    def cleaned_amounts(self) -> dict[str, int]:
        amounts = {}
        for rc in self.amount_classes:
            value = self.cleaned_data.get(amount_field_name(rc.code))
            if value:
                amounts[rc.code] = value
        return amounts

    def has_amount_field_errors(self) -> bool:
        return any(self[amount_field_name(rc.code)].errors for rc in self.amount_classes)


# --- projects -----------------------------------------------------------------------------
class ProjectForm(forms.Form):
    institution = forms.TypedChoiceField(label=_("Institution"), coerce=int)
    title = forms.CharField(label=_("Title"), max_length=200)
    abstract = forms.CharField(label=_("Abstract"), max_length=5000, widget=forms.Textarea(attrs={"rows": 5}))
    discipline = forms.ChoiceField(label=_("Field of science"), choices=Discipline.choices)
    start = date_field(_("Start"))
    end = date_field(_("End"))

    def __init__(self, *args, institutions=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["institution"].choices = [(i.pk, i.name) for i in institutions]

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["end"] <= data["start"]:
            self.add_error("end", _("The end must be after the start."))
        return data


class ProjectMemberAddForm(forms.Form):
    email = forms.EmailField(
        label=_("Email"),
        max_length=254,
        help_text=_("A member of the project's institution."),
    )

    def clean_email(self) -> str:
        return normalize_email(self.cleaned_data["email"])


# --- requests -----------------------------------------------------------------------------
class AllocationChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj) -> str:
        return _("Allocation #%(id)s · %(start)s – %(end)s · %(state)s") % {
            "id": obj.pk,
            "start": obj.start.isoformat(),
            "end": obj.end.isoformat(),
            "state": obj.get_state_display(),
        }


class RequestChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj) -> str:
        return f"#{obj.pk} {obj.title} · {obj.get_state_display()}"


class RequestForm(AmountsMixin, forms.Form):
    """The PI's request wizard: kind, tier, dates, amounts, justification, attachment."""

    kind = forms.ChoiceField(
        label=_("Kind of request"), choices=RequestKind.choices, initial=RequestKind.NEW, widget=forms.RadioSelect
    )
    allocation = AllocationChoiceField(
        label=_("Allocation it changes"), queryset=None, required=False, empty_label=_("Choose an allocation")
    )
    appeal_of = RequestChoiceField(
        label=_("Decided request you appeal"), queryset=None, required=False, empty_label=_("Choose a request")
    )
    tier = forms.ChoiceField(label=_("Tier"), choices=Tier.choices, initial=Tier.EXPLORE, widget=forms.RadioSelect)
    title = forms.CharField(label=_("Title"), max_length=200)
    start = date_field(_("Start"))
    end = date_field(_("End"))
    justification = forms.CharField(
        label=_("Scientific justification"),
        max_length=20000,
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text=_("What you will compute, why these amounts, and how ready your codes are."),
    )
    attachment = forms.FileField(
        label=_("Attachment (PDF)"),
        required=False,
        widget=forms.ClearableFileInput(attrs={"accept": "application/pdf,.pdf"}),
        help_text=_("Optional: a PDF of at most 10 MB (proposal, scaling study)."),
    )
    site_preferences = forms.CharField(
        label=_("Preferred centres"),
        required=False,
        max_length=400,
        help_text=_("Optional: centre codes, most preferred first, separated by commas (e.g. zhengzhou, tianjin). "
                    "The quota broker places the award there when prices are similar."),
    )

    def __init__(self, *args, classes, allocations, appealable, amounts=None, editing=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["allocation"].queryset = allocations
        self.fields["appeal_of"].queryset = appealable
        self.add_amount_fields(classes, amounts)
        self.editing = editing
        if editing:
            # The kind and what it refers to are fixed once the request exists.
            for name in ("kind", "allocation", "appeal_of"):
                self.fields[name].disabled = True
                self.fields[name].required = False

    def clean_site_preferences(self) -> list[str]:
        codes = [c.strip().lower() for c in re.split(r"[,，\s]+", self.cleaned_data.get("site_preferences") or "")]
        codes = [c for c in codes if c]
        if any(not re.fullmatch(r"[a-z0-9_-]{1,32}", c) for c in codes):
            raise forms.ValidationError(_("Use centre codes such as zhengzhou, separated by commas."))
        return list(dict.fromkeys(codes))[:20]

    def clean(self):
        data = super().clean()
        kind = data.get("kind")
        if kind in (RequestKind.RENEWAL, RequestKind.SUPPLEMENT, RequestKind.EXTENSION) and not self.editing:
            if not data.get("allocation") and "allocation" not in self.errors:
                self.add_error("allocation", _("Choose the allocation this request changes."))
        if kind == RequestKind.APPEAL and not self.editing:
            if not data.get("appeal_of") and "appeal_of" not in self.errors:
                self.add_error("appeal_of", _("Choose the decided request you appeal."))
        if kind not in (RequestKind.RENEWAL, RequestKind.SUPPLEMENT, RequestKind.EXTENSION):
            data["allocation"] = None
        if kind != RequestKind.APPEAL:
            data["appeal_of"] = None
        return data


class WithdrawForm(forms.Form):
    reason = forms.CharField(label=_("Reason (optional)"), max_length=5000, required=False)


class RequestFilterForm(forms.Form):
    state = forms.ChoiceField(label=_("State"), required=False)

    def __init__(self, *args, states=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["state"].choices = [("", _("All states")), *(states or RequestState.choices)]


# --- reviews ------------------------------------------------------------------------------
SCORES = [(n, str(n)) for n in range(6)]


def score_field(label, help_text) -> forms.TypedChoiceField:
    return forms.TypedChoiceField(
        label=label,
        choices=SCORES,
        coerce=int,
        widget=forms.RadioSelect(attrs={"class": "score"}),
        help_text=help_text,
        error_messages={"required": _("Give a score from 0 to 5.")},
    )


class ReviewForm(AmountsMixin, forms.Form):
    merit = score_field(_("Scientific merit"), _("0 = none, 5 = outstanding"))
    feasibility = score_field(_("Feasibility"), _("Can the plan be done with these resources and this team?"))
    readiness = score_field(_("Computational readiness"), _("Do the codes run and scale on the requested resources?"))
    comment = forms.CharField(
        label=_("Comment for the committee and the PI"),
        max_length=10000,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text=_("The PI reads it after the decision, without your name."),
    )

    def __init__(self, *args, classes, recommended=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_amount_fields(classes, recommended)


class ConflictForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"),
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("For example: co-author of the PI in the last three years."),
    )


# --- committee ----------------------------------------------------------------------------
class AssignReviewerForm(forms.Form):
    reviewer = forms.EmailField(
        label=_("Reviewer's email"),
        max_length=254,
        required=False,
        widget=forms.EmailInput(attrs={"list": "eligible-reviewers", "autocomplete": "off"}),
    )

    def clean_reviewer(self) -> str:
        return normalize_email(self.cleaned_data.get("reviewer") or "")


class DecisionForm(AmountsMixin, forms.Form):
    outcome = forms.ChoiceField(label=_("Decision"), choices=Decision.Outcome.choices, widget=forms.RadioSelect)
    reason = forms.CharField(
        label=_("Reason"),
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_("Required: the PI reads it."),
    )

    def __init__(self, *args, classes, asked: dict, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_amount_fields([rc for rc in classes if rc.code in asked], asked)
        self.asked = asked


class LedgerFilterForm(forms.Form):
    kind = forms.ChoiceField(
        label=_("Kind"),
        required=False,
        choices=[
            ("", _("All kinds")),
            *[
                (value, pgettext_lazy("ledger entry", "Award") if value == "award" else label)
                for value, label in LedgerKind.choices
            ],
        ],
    )
