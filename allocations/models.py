"""Projects, allocation requests and their review, awards (allocations) and the ledger.

Amounts in requests and decisions are whole display units (core-hours, card-hours, TB-days).
The ledger and balances count integer *smallest units*: display unit × ``ResourceClass.scale``
(cpu/gpu: unit-seconds, so jobs can be charged per second; storage: GB-days).
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from accounts.models import Institution


class Discipline(models.TextChoices):
    """Fields of science (after the NSFC departments)."""

    MATHEMATICS = "mathematics", _("Mathematical sciences")
    PHYSICS = "physics", _("Physics and astronomy")
    CHEMISTRY = "chemistry", _("Chemical sciences")
    LIFE = "life_sciences", _("Life sciences")
    EARTH = "earth_sciences", _("Earth and atmospheric sciences")
    ENGINEERING = "engineering_materials", _("Engineering and materials")
    INFORMATION = "information_sciences", _("Information sciences and AI")
    MANAGEMENT = "management_sciences", _("Management and social sciences")
    MEDICINE = "medical_sciences", _("Medical sciences")
    INTERDISCIPLINARY = "interdisciplinary", _("Interdisciplinary")


class ResourceKind(models.TextChoices):
    CPU = "cpu", _("CPU")
    GPU = "gpu", _("GPU")
    STORAGE = "storage", _("Storage")


class ResourceClass(models.Model):
    """One row of the published conversion table: a resource class and its price in credits."""

    code = models.CharField(max_length=48, unique=True)  # cpu | gpu:<family> | storage
    kind = models.CharField(max_length=16, choices=ResourceKind.choices)
    family = models.ForeignKey("federation.AcceleratorFamily", null=True, blank=True, on_delete=models.PROTECT)
    name = models.CharField(max_length=100)
    unit = models.CharField(max_length=32)  # core-hour | card-hour | TB-day
    scale = models.PositiveIntegerField()  # smallest units per display unit
    credits_per_unit = models.DecimalField(max_digits=12, decimal_places=4)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["kind", "code"]
        constraints = [
            models.CheckConstraint(condition=Q(scale__gt=0), name="resource_class_scale_positive"),
            models.CheckConstraint(condition=Q(credits_per_unit__gt=0), name="resource_class_price_positive"),
        ]

    def __str__(self) -> str:
        return self.code


class Project(models.Model):
    TENANT_FIELD = "institution"

    institution = models.ForeignKey(Institution, on_delete=models.PROTECT, related_name="projects")
    pi = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="led_projects")
    title = models.CharField(_("title"), max_length=200)
    abstract = models.TextField(_("abstract"), max_length=5000)
    discipline = models.CharField(_("field of science"), max_length=32, choices=Discipline.choices)
    start = models.DateField(_("start"))
    end = models.DateField(_("end"))
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.CheckConstraint(condition=Q(end__gt=F("start")), name="project_end_after_start")]

    def __str__(self) -> str:
        return self.title

    @property
    def is_active(self) -> bool:
        today = timezone.localdate()
        return self.start <= today <= self.end


class ProjectMember(models.Model):
    TENANT_FIELD = "project__institution"

    class Role(models.TextChoices):
        PI = "pi", _("PI")
        MEMBER = "member", _("Member")

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="project_memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project_id", "user_id"]
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="project_member_unique")]

    def __str__(self) -> str:
        return f"{self.user} on project #{self.project_id}"


class RequestKind(models.TextChoices):
    NEW = "new", _("New")
    RENEWAL = "renewal", _("Renewal")
    SUPPLEMENT = "supplement", _("Supplement")
    EXTENSION = "extension", _("Extension")
    APPEAL = "appeal", _("Appeal")


class Tier(models.TextChoices):
    EXPLORE = "explore", _("Explore")
    STANDARD = "standard", _("Standard")
    MAJOR = "major", _("Major")


class RequestState(models.TextChoices):
    DRAFT = "draft", _("Draft")
    SUBMITTED = "submitted", _("Submitted")
    APPEALED = "appealed", _("Appealed")
    UNDER_REVIEW = "under_review", _("Under review")
    REVISION_REQUESTED = "revision_requested", _("Revision requested")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    WITHDRAWN = "withdrawn", _("Withdrawn")


class AllocationRequest(models.Model):
    TENANT_FIELD = "institution"

    institution = models.ForeignKey(Institution, on_delete=models.PROTECT, related_name="allocation_requests")
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="requests")
    kind = models.CharField(max_length=16, choices=RequestKind.choices)
    tier = models.CharField(max_length=16, choices=Tier.choices)
    state = models.CharField(max_length=24, choices=RequestState.choices, default=RequestState.DRAFT)
    title = models.CharField(_("title"), max_length=200)
    justification = models.TextField(_("justification"), max_length=20000)
    attachment = models.FileField(_("attachment (PDF)"), upload_to="requests/%Y/%m/", blank=True)
    amounts = models.JSONField(default=dict, blank=True)  # {class code: whole display units}
    credits = models.DecimalField(max_digits=16, decimal_places=4, default=0)
    start = models.DateField()
    end = models.DateField()
    # renewal / supplement / extension: the allocation it changes; appeal: the decided request.
    allocation = models.ForeignKey(
        "Allocation", null=True, blank=True, on_delete=models.PROTECT, related_name="change_requests"
    )
    appeal_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="appeals")
    site_preferences = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["state", "submitted_at"], name="request_state_submitted")]
        constraints = [
            models.CheckConstraint(condition=Q(end__gt=F("start")), name="request_end_after_start"),
            models.CheckConstraint(condition=Q(credits__gte=0), name="request_credits_not_negative"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"


class RequestTransition(models.Model):
    """History row for every state change of a request (its timeline)."""

    TENANT_FIELD = "request__institution"

    request = models.ForeignKey(AllocationRequest, on_delete=models.CASCADE, related_name="transitions")
    from_state = models.CharField(max_length=24)
    to_state = models.CharField(max_length=24)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=300)
    reason = models.TextField(blank=True, max_length=5000)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"#{self.request_id}: {self.from_state} → {self.to_state}"


class ConflictOfInterest(models.Model):
    """A reviewer's declared conflict with one request or with a whole institution."""

    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conflicts")
    request = models.ForeignKey(
        AllocationRequest, null=True, blank=True, on_delete=models.CASCADE, related_name="conflicts"
    )
    institution = models.ForeignKey(Institution, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(request__isnull=False) | Q(institution__isnull=False), name="conflict_has_target"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reviewer} conflicted with {self.request_id or self.institution_id}"


class Review(models.Model):
    """An assignment of a reviewer to a request, and (once submitted) their review."""

    TENANT_FIELD = "request__institution"

    class State(models.TextChoices):
        ASSIGNED = "assigned", _("Assigned")
        SUBMITTED = "submitted", _("Submitted")
        DECLINED = "declined", _("Declined (conflict)")
        CLOSED = "closed", _("Closed unfinished (request withdrawn or decided)")

    request = models.ForeignKey(AllocationRequest, on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews")
    state = models.CharField(max_length=16, choices=State.choices, default=State.ASSIGNED)
    assigned_by = models.CharField(max_length=300)
    assigned_at = models.DateTimeField(default=timezone.now)
    merit = models.PositiveSmallIntegerField(null=True, blank=True)
    feasibility = models.PositiveSmallIntegerField(null=True, blank=True)
    readiness = models.PositiveSmallIntegerField(null=True, blank=True)
    comment = models.TextField(blank=True, max_length=10000)
    recommended_amounts = models.JSONField(default=dict, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["assigned_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["request", "reviewer"], name="review_one_per_reviewer"),
            models.CheckConstraint(
                condition=(Q(merit__isnull=True) | Q(merit__lte=5))
                & (Q(feasibility__isnull=True) | Q(feasibility__lte=5))
                & (Q(readiness__isnull=True) | Q(readiness__lte=5)),
                name="review_scores_0_to_5",
            ),
        ]

    def __str__(self) -> str:
        return f"Review of #{self.request_id} by {self.reviewer}"

    @property
    def mean_score(self) -> float | None:
        if self.state != self.State.SUBMITTED:
            return None
        return round((self.merit + self.feasibility + self.readiness) / 3, 2)


class Decision(models.Model):
    TENANT_FIELD = "request__institution"

    class Outcome(models.TextChoices):
        AWARD = "award", _("Award")
        REJECT = "reject", _("Reject")
        REVISE = "revise", _("Ask for revision")

    request = models.ForeignKey(AllocationRequest, on_delete=models.CASCADE, related_name="decisions")
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    amounts = models.JSONField(default=dict, blank=True)
    reason = models.TextField(max_length=5000)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_by_label = models.CharField(max_length=300)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.outcome} on #{self.request_id}"


class AllocationState(models.TextChoices):
    ACTIVE = "active", _("Active")
    EXPIRED = "expired", _("Expired")
    SUSPENDED = "suspended", _("Suspended")


class Allocation(models.Model):
    TENANT_FIELD = "institution"

    institution = models.ForeignKey(Institution, on_delete=models.PROTECT, related_name="allocations")
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="allocations")
    origin = models.ForeignKey(AllocationRequest, on_delete=models.PROTECT, related_name="+")
    state = models.CharField(max_length=16, choices=AllocationState.choices, default=AllocationState.ACTIVE)
    start = models.DateField()
    end = models.DateField()
    created_at = models.DateTimeField(auto_now_add=True)
    warned_30_at = models.DateTimeField(null=True, blank=True)
    warned_7_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-start", "-id"]
        indexes = [models.Index(fields=["state", "end"], name="allocation_state_end")]
        constraints = [models.CheckConstraint(condition=Q(end__gt=F("start")), name="allocation_end_after_start")]

    def __str__(self) -> str:
        return f"Allocation #{self.pk} ({self.project.title})"


class AllocationBalance(models.Model):
    """Running totals per allocation and class, in smallest units. The CHECK makes overspending
    impossible whatever the code does: awarded − held − charged never goes below zero."""

    TENANT_FIELD = "allocation__institution"

    allocation = models.ForeignKey(Allocation, on_delete=models.CASCADE, related_name="balances")
    resource_class = models.ForeignKey(ResourceClass, on_delete=models.PROTECT, related_name="+")
    awarded = models.BigIntegerField(default=0)
    held = models.BigIntegerField(default=0)
    charged = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["allocation_id", "resource_class_id"]
        constraints = [
            models.UniqueConstraint(fields=["allocation", "resource_class"], name="balance_one_per_class"),
            models.CheckConstraint(condition=Q(held__gte=0) & Q(charged__gte=0), name="balance_parts_not_negative"),
            models.CheckConstraint(condition=Q(awarded__gte=F("held") + F("charged")), name="balance_never_negative"),
        ]

    def __str__(self) -> str:
        return f"allocation #{self.allocation_id} {self.resource_class_id}: {self.available} left"

    @property
    def available(self) -> int:
        return self.awarded - self.held - self.charged


class Hold(models.Model):
    """An amount reserved for a job until it is settled (charged) or released."""

    TENANT_FIELD = "allocation__institution"

    class State(models.TextChoices):
        OPEN = "open", _("Open")
        SETTLED = "settled", _("Settled")
        RELEASED = "released", _("Released")

    allocation = models.ForeignKey(Allocation, on_delete=models.PROTECT, related_name="holds")
    resource_class = models.ForeignKey(ResourceClass, on_delete=models.PROTECT, related_name="+")
    amount = models.BigIntegerField()
    # An aggregated hold (one per project, site and batch) is settled job by job: what is
    # still held. Single-job holds settle at once.
    remaining = models.BigIntegerField(default=0)
    job_ref = models.CharField(max_length=64)
    # The federation's centre the hold is for (its id; no foreign key: allocations depends on no other app).
    # The ledger reports what moves at a centre (``allocations.signals.quota_usage``) for its site quotas.
    site_ref = models.BigIntegerField(null=True, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN)
    created_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="hold_amount_positive"),
            models.CheckConstraint(condition=Q(remaining__gte=0) & Q(remaining__lte=F("amount")),
                                   name="hold_remaining_within_amount"),
        ]
        indexes = [models.Index(fields=["job_ref"], name="hold_job_ref")]

    def __str__(self) -> str:
        return f"hold {self.amount} for {self.job_ref} ({self.state})"


class LedgerKind(models.TextChoices):
    AWARD = "award", pgettext_lazy("ledger entry kind", "Award")
    HOLD = "hold", _("Hold")
    RELEASE = "release", _("Release")
    CHARGE = "charge", _("Charge")
    REFUND = "refund", _("Refund")
    TRANSFER = "transfer", _("Transfer")
    ADJUSTMENT = "adjustment", _("Adjustment")
    QUOTA = "quota", _("Site quota")


class LedgerEntry(models.Model):
    """Append-only. ``amount`` is signed, in smallest units, as it moves the entry's column:
    award/adjustment/transfer → awarded, hold/release → held, charge/refund → charged.
    ``quota`` entries move no balance: the quota broker placed (+) or took away (−) that many units of
    the allocation at the centre ``site_code`` (the award itself is unchanged)."""

    TENANT_FIELD = "allocation__institution"

    allocation = models.ForeignKey(Allocation, on_delete=models.PROTECT, related_name="ledger")
    resource_class = models.ForeignKey(ResourceClass, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=16, choices=LedgerKind.choices)
    amount = models.BigIntegerField()
    request = models.ForeignKey(AllocationRequest, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    hold = models.ForeignKey(Hold, null=True, blank=True, on_delete=models.PROTECT, related_name="entries")
    job_ref = models.CharField(max_length=64, blank=True)
    site_code = models.CharField(max_length=32, blank=True, default="")
    actor_label = models.CharField(max_length=300)
    memo = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["allocation", "-created_at"], name="ledger_allocation_time")]
        # Zero only for a ``quota`` entry that records a centre's answer without moving anything.
        constraints = [models.CheckConstraint(condition=~Q(amount=0) | Q(kind="quota"), name="ledger_amount_not_zero")]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} on allocation #{self.allocation_id}"
