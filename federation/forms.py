"""Forms of the federation pages: submitting a job, filtering the job list, moving a centre's state."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from federation.job_input import LIMITS
from federation.jobs import JobRequest
from federation.models import JobState, SiteState

WALLTIME_PATTERN = re.compile(r"^\s*(\d{1,4})(?::([0-5]?\d))?\s*$")
MIN_WALLTIME_S, MAX_WALLTIME_S = LIMITS["walltime_s"]
MAX_MEMORY_GB = LIMITS["memory_mb_per_node"][1] // 1024


def number(low: int, high: int, *, label, initial=None, help_text="") -> forms.IntegerField:
    return forms.IntegerField(
        label=label,
        min_value=low,
        max_value=high,
        initial=initial,
        help_text=help_text,
        widget=forms.NumberInput(attrs={"min": low, "max": high, "step": 1, "inputmode": "numeric"}),
    )


def parse_walltime(value: str) -> int:
    """"H:MM" or whole hours → seconds; ValueError when it is neither."""
    match = WALLTIME_PATTERN.match(value or "")
    if not match:
        raise ValueError(value)
    return int(match.group(1)) * 3600 + int(match.group(2) or 0) * 60


class JobSubmitForm(forms.Form):
    """One job, as the web form asks for it; ``job_request()`` is what the service takes."""

    project = forms.TypedChoiceField(label=_("Project"), coerce=int)
    name = forms.CharField(label=_("Job name"), max_length=200, required=False,
                           widget=forms.TextInput(attrs={"placeholder": _("e.g. md-run-42")}))
    nodes = number(*LIMITS["nodes"], label=_("Nodes"), initial=1)
    cores_per_node = number(*LIMITS["cores_per_node"], label=_("Cores per node"), initial=8)
    memory_gb_per_node = forms.DecimalField(
        label=_("Memory per node (GB)"), min_value=Decimal("0.001"), max_value=MAX_MEMORY_GB, decimal_places=3,
        initial=16, widget=forms.NumberInput(attrs={"min": "0.001", "max": MAX_MEMORY_GB, "step": "any"}))
    gpus_per_node = number(*LIMITS["gpus_per_node"], label=_("GPUs per node"), initial=0,
                           help_text=_("0 for a CPU job."))
    accepted_family = forms.ChoiceField(label=_("GPU family"), required=False,
                                        help_text=_("Any family when left empty."))
    application = forms.ChoiceField(label=_("Application"), required=False)
    walltime = forms.CharField(
        label=_("Walltime (hours:minutes)"), initial="01:00", max_length=8,
        widget=forms.TextInput(attrs={"placeholder": "01:30", "pattern": r"\d{1,4}(:\d{1,2})?"}),
        help_text=_("The job is stopped when it runs longer; its whole walltime is held on the allocation."))
    dataset = forms.CharField(label=_("Dataset location"), max_length=500, required=False,
                              widget=forms.TextInput(attrs={"placeholder": _("e.g. tianjin:/data/pku/climate")}),
                              help_text=_("Centres that host the dataset score better."))
    preferred_sites = forms.MultipleChoiceField(label=_("Preferred centres"), required=False,
                                                widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args, projects=(), families=(), applications=(), sites=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.projects = {p.pk: p for p in projects}
        self.fields["project"].choices = [(p.pk, f"{p.title} · {p.institution.code}") for p in projects]
        if len(self.projects) == 1:
            self.fields["project"].initial = next(iter(self.projects))
        self.fields["accepted_family"].choices = [("", _("Any"))] + [(f.code, f.name) for f in families]
        self.fields["application"].choices = [("", _("None (my own software)"))] + [
            (a.code, f"{a.name} · {a.category}") for a in applications]
        self.fields["preferred_sites"].choices = [(s.code, f"{s.city} · {s.code}") for s in sites]

    def clean_walltime(self) -> int:
        try:
            seconds = parse_walltime(self.cleaned_data["walltime"])
        except ValueError:
            raise forms.ValidationError(_("Write hours and minutes, e.g. 2:30.")) from None
        if not MIN_WALLTIME_S <= seconds <= MAX_WALLTIME_S:
            raise forms.ValidationError(
                _("From 1 minute to %(hours)s hours.") % {"hours": MAX_WALLTIME_S // 3600})
        return seconds

    def clean(self):
        data = super().clean()
        if data.get("accepted_family") and data.get("gpus_per_node") == 0:
            self.add_error("gpus_per_node", _("Ask for at least one GPU per node, or leave the GPU family empty."))
        return data

    @property
    def chosen_project(self):
        return self.projects[self.cleaned_data["project"]]

    def job_request(self) -> JobRequest:
        data = self.cleaned_data
        memory_mb = int((data["memory_gb_per_node"] * 1024).to_integral_value(rounding=ROUND_HALF_UP))
        return JobRequest(
            name=data["name"].strip(),
            nodes=data["nodes"],
            cores_per_node=data["cores_per_node"],
            memory_mb_per_node=max(1, memory_mb),
            gpus_per_node=data["gpus_per_node"],
            accepted_family=data["accepted_family"],
            application=data["application"],
            walltime_s=data["walltime"],
            dataset=data["dataset"].strip(),
            preferred_sites=tuple(data["preferred_sites"]),
        )


class JobFilterForm(forms.Form):
    state = forms.ChoiceField(label=_("State"), required=False)
    project = forms.TypedChoiceField(label=_("Project"), required=False, coerce=int, empty_value=None)

    def __init__(self, *args, projects=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["state"].choices = [("", _("All states"))] + list(JobState.choices)
        self.fields["project"].choices = [("", _("All projects"))] + [(p.pk, p.title) for p in projects]


class SiteStateForm(forms.Form):
    """An operator's move of a centre: drain, take offline, bring online (or mark degraded)."""

    state = forms.ChoiceField(choices=SiteState.choices)
    reason = forms.CharField(label=_("Reason"), max_length=300, required=False,
                             widget=forms.TextInput(attrs={"placeholder": _("e.g. cooling maintenance until 18:00")}))
