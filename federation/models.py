"""The federation's public catalogues (not tenant-owned): accelerator families."""

import json

from django.db import models
from django.utils.translation import gettext_lazy as _


class Ecosystem(models.TextChoices):
    CUDA = "cuda", "CUDA"
    ROCM_HIP = "rocm-hip", "ROCm/HIP"
    CANN = "cann", "CANN"
    CPU = "cpu", "CPU"


class AcceleratorFamily(models.Model):
    """A family of accelerator cards that allocations are awarded in (``gpu:<code>``)."""

    code = models.SlugField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=100)
    vendor = models.CharField(_("vendor"), max_length=64)
    ecosystem = models.CharField(_("software ecosystem"), max_length=16, choices=Ecosystem.choices)
    models_included = models.JSONField(_("card models"), default=list, blank=True)

    class Meta:
        ordering = ["code"]
        verbose_name = _("accelerator family")
        verbose_name_plural = _("accelerator families")

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class SiteState(models.TextChoices):
    ONLINE = "online", _("Online")
    DEGRADED = "degraded", _("Degraded")
    DRAINING = "draining", _("Draining")
    OFFLINE = "offline", _("Offline")


class AdapterKind(models.TextChoices):
    SIMULATED = "simulated", _("Simulated centre")
    SLURM = "slurm", _("Slurm (slurmrestd)")


class SlurmTokenSource(models.TextChoices):
    """Where the Slurm adapter gets the JWT it sends as X-SLURM-USER-TOKEN."""

    TOKEN = "token", _("Stored token")
    TOKEN_FILE = "token_file", _("Token file on the federation's server")
    JWT_KEY = "jwt_key", _("Slurm's JWT key file (short-lived tokens are minted)")


def default_price_schedule() -> list[dict]:
    """Peak 08:00-22:00 local time at 120 %, valley at 80 % (per-mille multipliers)."""
    return [{"start_hour": 8, "end_hour": 22, "multiplier_permille": 1200},
            {"start_hour": 22, "end_hour": 8, "multiplier_permille": 800}]


class Site(models.Model):
    """A supercomputing centre of the federation (public: every user may see sites)."""

    code = models.SlugField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=200)
    city = models.CharField(_("city"), max_length=100)
    state = models.CharField(_("state"), max_length=16, choices=SiteState.choices, default=SiteState.ONLINE)
    state_reason = models.CharField(max_length=300, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    adapter = models.CharField(max_length=16, choices=AdapterKind.choices, default=AdapterKind.SIMULATED)
    # Site currency units per national credit (centres bill in their own units).
    exchange_rate = models.DecimalField(max_digits=10, decimal_places=4, default=1)
    price_schedule = models.JSONField(default=default_price_schedule)
    created_at = models.DateTimeField(auto_now_add=True)
    # A Slurm centre (adapter "slurm"): its slurmrestd, the Slurm user jobs run as, and where the token
    # comes from. ``slurm_token`` is a secret: write-only in the API and admin, never logged or audited.
    slurm_url = models.URLField(_("slurmrestd URL"), max_length=300, blank=True, default="")
    slurm_user = models.CharField(_("Slurm user"), max_length=64, blank=True, default="")
    slurm_token_source = models.CharField(_("token source"), max_length=16, choices=SlurmTokenSource.choices,
                                          blank=True, default="")
    slurm_token = models.CharField(_("token"), max_length=4096, blank=True, default="")
    slurm_credential_path = models.CharField(_("token or key file"), max_length=500, blank=True, default="")
    slurm_workdir = models.CharField(_("working directory of jobs"), max_length=500, blank=True,
                                     default="/tmp")  # noqa: S108

    class Meta:
        ordering = ["code"]
        constraints = [models.CheckConstraint(condition=models.Q(exchange_rate__gt=0), name="site_rate_positive")]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class Partition(models.Model):
    """A pool of identical nodes at a site."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="partitions")
    name = models.SlugField(max_length=48)
    ecosystem = models.CharField(max_length=16, choices=Ecosystem.choices)
    family = models.ForeignKey(AcceleratorFamily, null=True, blank=True, on_delete=models.PROTECT,
                               related_name="partitions")
    accelerator_model = models.CharField(max_length=32, blank=True)
    nodes = models.PositiveIntegerField()
    cores_per_node = models.PositiveIntegerField()
    memory_mb_per_node = models.PositiveIntegerField()
    gpus_per_node = models.PositiveIntegerField(default=0)
    max_walltime_s = models.PositiveIntegerField(default=7 * 24 * 3600)
    # Credits per core-hour and per card-hour before the peak/valley multiplier.
    price_core_hour = models.DecimalField(max_digits=10, decimal_places=4)
    price_card_hour = models.DecimalField(max_digits=10, decimal_places=4, default=0)
    # The partition's name at the centre (Slurm), when it differs from ours.
    remote_name = models.CharField(_("name at the centre"), max_length=64, blank=True, default="")

    class Meta:
        ordering = ["site_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["site", "name"], name="partition_unique_name_per_site"),
            models.CheckConstraint(condition=models.Q(nodes__gt=0) & models.Q(cores_per_node__gt=0),
                                   name="partition_has_capacity"),
            models.CheckConstraint(
                condition=models.Q(gpus_per_node=0, family__isnull=True) | models.Q(gpus_per_node__gt=0,
                                                                                    family__isnull=False),
                name="partition_gpus_match_family"),
        ]

    def __str__(self) -> str:
        return f"{self.site.code}/{self.name}"

    @property
    def total_cards(self) -> int:
        return self.nodes * self.gpus_per_node

    @property
    def total_cores(self) -> int:
        return self.nodes * self.cores_per_node


class Application(models.Model):
    """An AI4S application or model in the federation's catalogue."""

    code = models.SlugField(max_length=48, unique=True)
    name = models.CharField(max_length=100)
    category = models.CharField(max_length=64)
    description = models.TextField(blank=True)
    ecosystems = models.JSONField(default=list)
    partitions = models.ManyToManyField(Partition, related_name="applications", blank=True)
    # Shell lines a real centre runs for this application (before the job's own command), with the job's
    # environment ($SUANWANG_JOB_ID, $SUANWANG_DATASET, ...). Empty: the job's command alone.
    launch_script = models.TextField(_("launch script"), blank=True, default="")

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name


class SiteOperator(models.Model):
    """Binds a person holding the site_operator federation role to the site they run."""

    user = models.ForeignKey("accounts.User", on_delete=models.CASCADE, related_name="operated_sites")
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="operators")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "site"], name="site_operator_unique")]

    def __str__(self) -> str:
        return f"{self.user} operates {self.site.code}"


class CapacityCommitment(models.Model):
    """What a site commits to the federation for a period, per resource class (smallest units)."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="commitments")
    resource_class = models.ForeignKey("allocations.ResourceClass", on_delete=models.PROTECT, related_name="+")
    period_start = models.DateField()
    period_end = models.DateField()
    amount = models.BigIntegerField()
    set_by = models.CharField(max_length=300)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["site_id", "period_start", "resource_class_id"]
        constraints = [
            models.UniqueConstraint(fields=["site", "resource_class", "period_start"], name="commitment_unique"),
            models.CheckConstraint(condition=models.Q(amount__gte=0), name="commitment_not_negative"),
            models.CheckConstraint(condition=models.Q(period_end__gt=models.F("period_start")),
                                   name="commitment_period_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.site.code} {self.resource_class_id} {self.period_start}: {self.amount}"


class SiteQuota(models.Model):
    """The share of an allocation's resource class brokered to one site (smallest units)."""

    TENANT_FIELD = "allocation__institution"

    class State(models.TextChoices):
        PROPOSED = "proposed", _("Proposed")
        ACCEPTED = "accepted", _("Accepted")
        DECLINED = "declined", _("Declined")
        WITHDRAWN = "withdrawn", _("Withdrawn (rebalanced)")

    allocation = models.ForeignKey("allocations.Allocation", on_delete=models.CASCADE, related_name="site_quotas")
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="quotas")
    resource_class = models.ForeignKey("allocations.ResourceClass", on_delete=models.PROTECT, related_name="+")
    # What the site carries for the allocation now (usable by the router while proposed or accepted;
    # after a decline or a withdrawal, what jobs had already used there).
    amount = models.BigIntegerField()
    # What the broker last proposed to the site (the operator may accept it, lower it or decline it).
    proposed_amount = models.BigIntegerField(default=0)
    # What the allocation's jobs at the site hold now and were charged (kept by the ledger's quota_usage
    # signal): the share's use. The router's remaining quota is amount − held − charged.
    held = models.BigIntegerField(default=0)
    charged = models.BigIntegerField(default=0)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PROPOSED)
    decided_by = models.CharField(max_length=300, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["allocation_id", "resource_class_id", "site_id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gte=0), name="site_quota_not_negative"),
            models.UniqueConstraint(fields=["allocation", "site", "resource_class"], name="site_quota_unique"),
        ]
        indexes = [models.Index(fields=["site", "state"], name="site_quota_site_state")]

    def __str__(self) -> str:
        return f"{self.site_id}: {self.amount} of {self.resource_class_id} ({self.state})"


class JobState(models.TextChoices):
    SUBMITTED = "submitted", _("Submitted")
    ROUTED = "routed", _("Routed")
    DISPATCHED = "dispatched", _("Dispatched")
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    COMPLETED = "completed", _("Completed")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")
    TIMED_OUT = "timed_out", _("Timed out")


TERMINAL_JOB_STATES = (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.TIMED_OUT)


# Job and JobEvent are the hot tables of batch submission (100,000 jobs in 10 s): their foreign keys
# carry no database constraint (``db_constraint=False``). PostgreSQL checks a foreign key with one
# trigger per row and key, which cost more than the rest of the COPY together. Referential integrity
# holds by construction instead: rows are only written by federation.jobs, whose ids come from rows it
# has just read or locked in the same transaction (the project and its active allocation, the holds it
# has just placed, the partitions of the routing snapshot and their sites, the job ids it drew from the
# sequence), and none of the referenced rows is ever deleted while jobs point at it: Django's
# ``on_delete`` (PROTECT, or CASCADE for events) still runs in the ORM's deletion collector, and the
# ledger's holds are append-only. Only the indexes queries use are kept; single-column indexes that a
# composite index already leads with, or that no query reads, are not built (``db_index=False``).
class Job(models.Model):
    """A researcher's job: requirements, where it was routed and why, its site job id and its cost."""

    TENANT_FIELD = "institution"

    institution = models.ForeignKey("accounts.Institution", on_delete=models.PROTECT, related_name="jobs",
                                    db_constraint=False, db_index=False)  # job_institution_time leads with it
    project = models.ForeignKey("allocations.Project", on_delete=models.PROTECT, related_name="jobs",
                                db_constraint=False, db_index=False)  # job_project_state leads with it
    allocation = models.ForeignKey("allocations.Allocation", on_delete=models.PROTECT, related_name="jobs",
                                   db_constraint=False, db_index=False)
    submitted_by = models.CharField(max_length=300)
    batch_id = models.UUIDField(null=True, blank=True)
    name = models.CharField(max_length=200)
    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.SUBMITTED)
    reason = models.CharField(max_length=300, blank=True)
    # Requirements
    nodes = models.PositiveIntegerField(default=1)
    cores_per_node = models.PositiveIntegerField()
    memory_mb_per_node = models.PositiveIntegerField()
    gpus_per_node = models.PositiveIntegerField(default=0)
    accepted_models = models.JSONField(default=list, blank=True)
    accepted_family = models.CharField(max_length=32, blank=True)
    walltime_s = models.PositiveIntegerField()
    application = models.CharField(max_length=48, blank=True)
    dataset = models.CharField(max_length=500, blank=True)
    preferred_sites = models.JSONField(default=list, blank=True)
    # Shell lines a real centre runs (after the application's launch script); at most 16,000 characters.
    command = models.TextField(blank=True, default="", db_default="")
    # Routing and dispatch
    site = models.ForeignKey(Site, null=True, blank=True, on_delete=models.PROTECT, related_name="jobs",
                             db_constraint=False, db_index=False)  # routed ones: job_dispatch_pending
    partition = models.ForeignKey(Partition, null=True, blank=True, on_delete=models.PROTECT, related_name="jobs",
                                  db_constraint=False, db_index=False)
    # Why the job went where it went: the chosen candidate and the per-candidate score breakdown, as JSON
    # text. Read and write ``routing`` (below); jobs_submit stores it in a compact form (``expand_routing``).
    # Text, not jsonb: nothing queries inside it, and parsing its ~30 numbers into jsonb's numerics cost
    # PostgreSQL more than the rest of the job's row together (10 of 17 µs per job in COPY).
    routing_data = models.TextField(default="", blank=True, db_column="routing")
    attempts = models.PositiveSmallIntegerField(default=0)
    site_job_id = models.CharField(max_length=64, blank=True)
    resource_class = models.ForeignKey("allocations.ResourceClass", null=True, blank=True,
                                       on_delete=models.PROTECT, related_name="+", db_constraint=False,
                                       db_index=False)
    hold = models.ForeignKey("allocations.Hold", null=True, blank=True, on_delete=models.PROTECT,
                             related_name="jobs", db_constraint=False, db_index=False)
    hold_part = models.BigIntegerField(default=0)  # this job's part of the (aggregated) hold
    charged = models.BigIntegerField(default=0)
    exit_code = models.IntegerField(null=True, blank=True)
    submitted_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-submitted_at", "-id"]
        indexes = [
            models.Index(fields=["institution", "-submitted_at"], name="job_institution_time"),
            models.Index(fields=["project", "state"], name="job_project_state"),
            # The dispatch sweeper's claim loop reads routed jobs only: keep that index small.
            models.Index(fields=["site", "id"], name="job_dispatch_pending", condition=models.Q(state="routed")),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(nodes__gt=0) & models.Q(cores_per_node__gt=0)
                                   & models.Q(walltime_s__gt=0), name="job_requirements_positive"),
            models.CheckConstraint(condition=models.Q(hold_part__gte=0) & models.Q(charged__gte=0),
                                   name="job_amounts_not_negative"),
        ]

    def __str__(self) -> str:
        return f"job {self.pk} ({self.state})"

    @property
    def routing(self) -> dict:
        """The routing explanation: site, partition, score, estimated wait and cost, the candidates with
        their score parts, the excluded counts (``expand_routing``); {} when the job was never routed."""
        text = self.routing_data
        known = self.__dict__.get("_routing")
        if known is None or known[0] is not text:
            known = self.__dict__["_routing"] = (text, expand_routing(json.loads(text)) if text else {})
        return known[1]

    @routing.setter
    def routing(self, value: dict | list) -> None:
        self.routing_data = json.dumps(value, separators=(",", ":")) if value else ""


# Positions in the compact form of a routing explanation, and in each of its candidates.
ROUTING_KEYS = ("site", "partition", "score", "estimated_wait_s", "estimated_cost", "skipped_by_kind", "excluded")
ROUTING_CANDIDATE_KEYS = ("site", "partition", "status", "total", "wait", "price", "locality", "balance",
                          "preference", "wait_s", "cost")


def expand_routing(data) -> dict:
    """A routing explanation as readers want it, a dict, from what a job stores: the same dict, or the
    compact form jobs_submit writes (a third of the size: positions instead of keys)
    ``[site, partition, score, estimated_wait_s, estimated_cost, skipped_by_kind, excluded, candidates]``
    with each candidate ``[site, partition id, status, total, wait, price, locality, balance, preference,
    wait_s, cost]`` (ROUTING_KEYS, ROUTING_CANDIDATE_KEYS)."""
    if not isinstance(data, list):
        return data
    explanation = dict(zip(ROUTING_KEYS, data[:7], strict=True))
    explanation["candidates"] = [dict(zip(ROUTING_CANDIDATE_KEYS, c, strict=True)) for c in data[7]]
    return explanation


class JobEvent(models.Model):
    """Every state change of a job, with its cause."""

    TENANT_FIELD = "job__institution"

    # no database constraint, as Job's keys (see above); job_event_job_time leads with it
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events", db_constraint=False,
                            db_index=False)
    from_state = models.CharField(max_length=16, blank=True)
    to_state = models.CharField(max_length=16)
    cause = models.CharField(max_length=300)
    at = models.DateTimeField()

    class Meta:
        # Events are appended in causal order (a centre reports a job queued only after we handed it
        # over), while their ``at`` comes from each reporter's clock: the timeline follows insertion.
        ordering = ["id"]
        indexes = [models.Index(fields=["job", "at"], name="job_event_job_time")]

    def __str__(self) -> str:
        return f"job {self.job_id}: {self.from_state} → {self.to_state}"


class IdempotencyRecord(models.Model):
    """The first answer to a request with an ``Idempotency-Key``: a retry gets it back unchanged."""

    TENANT_FIELD = "institution"

    institution = models.ForeignKey("accounts.Institution", on_delete=models.CASCADE, related_name="+")
    actor_label = models.CharField(max_length=300)
    key = models.CharField(max_length=200)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    response = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["institution", "actor_label", "key"],
                                               name="idempotency_unique_key")]

    def __str__(self) -> str:
        return f"{self.actor_label} {self.key}"
