"""REST API for the federation's public data and the centre operators' actions."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from allocations.ledger import to_display
from allocations.models import ResourceClass
from federation import selectors, services
from federation.models import AdapterKind, SiteState, SlurmTokenSource
from portal.api.serializers import StrictInputSerializer
from portal.api.views import BaseApiView
from portal.errors import ValidationFailed


class PartitionOutput(serializers.Serializer):
    name = serializers.CharField()
    ecosystem = serializers.CharField()
    family = serializers.CharField(source="family.code", allow_null=True, default=None)
    accelerator_model = serializers.CharField()
    nodes = serializers.IntegerField()
    cores_per_node = serializers.IntegerField()
    memory_mb_per_node = serializers.IntegerField()
    gpus_per_node = serializers.IntegerField()
    max_walltime_s = serializers.IntegerField()
    price_core_hour = serializers.DecimalField(max_digits=10, decimal_places=4)
    price_card_hour = serializers.DecimalField(max_digits=10, decimal_places=4)


class SiteOutput(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    city = serializers.CharField()
    state = serializers.CharField()
    state_reason = serializers.CharField()
    heartbeat_at = serializers.DateTimeField(allow_null=True)
    adapter = serializers.CharField()
    exchange_rate = serializers.DecimalField(max_digits=10, decimal_places=4)
    price_schedule = serializers.ListField(child=serializers.DictField())
    totals = serializers.SerializerMethodField()

    def get_totals(self, site) -> dict:
        return selectors.site_totals(site)


class SiteDetailOutput(SiteOutput):
    partitions = PartitionOutput(many=True)


class SiteListView(BaseApiView):
    @extend_schema(responses=SiteOutput(many=True), summary="The federation's centres (public)")
    def get(self, request):
        return Response(SiteOutput(selectors.sites_with_partitions(), many=True).data)


class SiteDetailView(BaseApiView):
    @extend_schema(responses=SiteDetailOutput, summary="A centre and its partitions")
    def get(self, request, site_code: str):
        return Response(SiteDetailOutput(selectors.get_site(site_code)).data)


class SiteStateView(BaseApiView):
    class Input(StrictInputSerializer):
        state = serializers.ChoiceField(choices=SiteState.choices)
        reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")

    @extend_schema(request=Input, responses=SiteOutput, summary="Drain, take offline or bring online (operators)")
    def post(self, request, site_code: str):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        site = services.site_set_state(actor=self.actor(), site=selectors.get_site(site_code), **data.validated_data)
        return Response(SiteOutput(selectors.get_site(site.code)).data)


class ConnectionOutput(serializers.Serializer):
    adapter = serializers.CharField()
    slurm_url = serializers.CharField()
    slurm_user = serializers.CharField()
    slurm_token_source = serializers.CharField()
    slurm_token_set = serializers.BooleanField(help_text="Whether a token is stored (it is never shown)")
    slurm_credential_path = serializers.CharField()
    slurm_workdir = serializers.CharField()
    partitions = serializers.DictField(child=serializers.CharField(), help_text="Our partition → Slurm partition")


class SiteConnectionView(BaseApiView):
    """How the federation reaches a centre: simulated, or Slurm over slurmrestd (federation admins)."""

    class Input(StrictInputSerializer):
        adapter = serializers.ChoiceField(choices=AdapterKind.choices, required=False)
        slurm_url = serializers.CharField(max_length=300, required=False, allow_blank=True)
        slurm_user = serializers.CharField(max_length=64, required=False, allow_blank=True)
        slurm_token_source = serializers.ChoiceField(choices=SlurmTokenSource.choices, required=False)
        token = serializers.CharField(max_length=4096, required=False, allow_blank=True, write_only=True,
                                      trim_whitespace=True, help_text="Write-only: stored, never shown back")
        slurm_credential_path = serializers.CharField(max_length=500, required=False, allow_blank=True)
        slurm_workdir = serializers.CharField(max_length=500, required=False, allow_blank=True)
        partitions = serializers.DictField(child=serializers.CharField(max_length=64, allow_blank=True),
                                           required=False, help_text="Our partition → Slurm partition")

    @extend_schema(responses=ConnectionOutput, summary="A centre's connection settings (federation admins)")
    def get(self, request, site_code: str):
        from federation import slurm_services

        return Response(slurm_services.site_connection(actor=self.actor(), site=selectors.get_site(site_code)))

    @extend_schema(request=Input, responses=ConnectionOutput,
                   summary="Set a centre's connection: adapter, slurmrestd URL, user, token source (federation admins)")
    def put(self, request, site_code: str):
        from federation import slurm_services

        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        actor = self.actor()
        site = slurm_services.site_configure_connection(actor=actor, site=selectors.get_site(site_code),
                                                        **data.validated_data)
        return Response(slurm_services.site_connection(actor=actor, site=site))


class PingOutput(serializers.Serializer):
    ok = serializers.BooleanField()
    latency_ms = serializers.FloatField(allow_null=True)
    version = serializers.CharField()
    api = serializers.CharField()
    code = serializers.CharField(help_text="Why it failed: slurm_unavailable, slurm_auth_failed, ...")
    message = serializers.CharField()


class SitePingView(BaseApiView):
    @extend_schema(request=None, responses=PingOutput,
                   summary="Check the connection to a Slurm centre: latency and version (operators)")
    def post(self, request, site_code: str):
        from federation import slurm_services

        result = slurm_services.site_ping(actor=self.actor(), site=selectors.get_site(site_code))
        return Response(result.as_dict())


class CommitmentOutput(serializers.Serializer):
    resource_class = serializers.CharField(source="resource_class.code")
    period_start = serializers.DateField()
    period_end = serializers.DateField()
    amount = serializers.SerializerMethodField(help_text="In display units (core-hours, card-hours, TB-days)")
    set_by = serializers.CharField()
    updated_at = serializers.DateTimeField()

    def get_amount(self, obj) -> str:
        return str(to_display(obj.resource_class, obj.amount))


class SiteCommitmentView(BaseApiView):
    class Input(StrictInputSerializer):
        resource_class = serializers.CharField(max_length=48)
        period_start = serializers.DateField()
        period_end = serializers.DateField()
        amount = serializers.IntegerField(min_value=0, help_text="Display units: core-hours, card-hours, TB-days")

    @extend_schema(responses=CommitmentOutput(many=True), summary="Capacity the centre commits per period")
    def get(self, request, site_code: str):
        site = selectors.get_site(site_code)
        return Response(CommitmentOutput(selectors.commitments_for_site(site), many=True).data)

    @extend_schema(request=Input, responses=CommitmentOutput, summary="Set a period's committed capacity (operators)")
    def post(self, request, site_code: str):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        resource_class = ResourceClass.objects.filter(code=values["resource_class"], active=True).first()
        if resource_class is None:
            raise ValidationFailed("Unknown resource class.", code="unknown_resource_class",
                                   fields={"resource_class": ["Unknown."]})
        commitment = services.capacity_commit(
            actor=self.actor(), site=selectors.get_site(site_code), resource_class=resource_class,
            period_start=values["period_start"], period_end=values["period_end"], amount_display=values["amount"])
        return Response(CommitmentOutput(commitment).data)


class ApplicationOutput(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    category = serializers.CharField()
    description = serializers.CharField()
    ecosystems = serializers.ListField(child=serializers.CharField())
    sites = serializers.SerializerMethodField()

    def get_sites(self, app) -> list[str]:
        return sorted({p.site.code for p in app.partitions.all()})


class ApplicationListView(BaseApiView):
    @extend_schema(responses=ApplicationOutput(many=True), summary="The AI4S application catalogue")
    def get(self, request):
        return Response(ApplicationOutput(selectors.applications(), many=True).data)


# --- jobs --------------------------------------------------------------------------------
class JobOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    project = serializers.IntegerField(source="project_id")
    state = serializers.CharField()
    reason = serializers.CharField()
    site = serializers.CharField(source="site.code", allow_null=True, default=None)
    partition = serializers.CharField(source="partition.name", allow_null=True, default=None)
    nodes = serializers.IntegerField()
    cores_per_node = serializers.IntegerField()
    memory_mb_per_node = serializers.IntegerField()
    gpus_per_node = serializers.IntegerField()
    walltime_s = serializers.IntegerField()
    application = serializers.CharField()
    charged = serializers.IntegerField(help_text="Smallest units: core-seconds or card-seconds")
    exit_code = serializers.IntegerField(allow_null=True)
    submitted_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)


class JobDetailOutput(JobOutput):
    command = serializers.CharField()
    routing = serializers.JSONField()
    events = serializers.SerializerMethodField()

    def get_events(self, job) -> list[dict]:
        return [{"from": e.from_state, "to": e.to_state, "cause": e.cause, "at": e.at} for e in job.events.all()]


STATE_DEPENDENT_REFUSALS = {"insufficient_balance", "insufficient_quota", "no_site_online"}


def _job_entry_schema():
    from drf_spectacular.utils import inline_serializer

    return inline_serializer("JobEntry", fields={
        "name": serializers.CharField(required=False), "nodes": serializers.IntegerField(required=False),
        "cores_per_node": serializers.IntegerField(), "memory_mb_per_node": serializers.IntegerField(required=False),
        "gpus_per_node": serializers.IntegerField(required=False), "walltime_s": serializers.IntegerField(),
        "accepted_models": serializers.ListField(child=serializers.CharField(), required=False),
        "accepted_family": serializers.CharField(required=False),
        "application": serializers.CharField(required=False), "dataset": serializers.CharField(required=False),
        "preferred_sites": serializers.ListField(child=serializers.CharField(), required=False),
        "command": serializers.CharField(required=False, help_text="Shell lines a Slurm centre runs (≤ 16,000)"),
    })


def _submit(view, request, entries: list, *, single: bool):
    from allocations.access import get_project
    from federation import job_input, jobs
    from federation.idempotency import run_idempotently

    actor = view.actor()
    body = request.data if isinstance(request.data, dict) else {}
    project_id = body.get("project")
    if isinstance(project_id, bool) or not isinstance(project_id, int):
        raise ValidationFailed("Name the project to charge.", code="invalid", fields={"project": ["Required."]})
    project = get_project(actor, project_id)

    def run():
        parsed, invalid = [], []
        for index, entry in enumerate(entries):
            try:
                parsed.append((index, job_input.parse_job(entry)))
            except job_input.EntryError as exc:
                if single:
                    raise ValidationFailed("Invalid job.", code="invalid", fields=exc.fields) from None
                invalid.append({"index": index, "code": "invalid", "message": "Invalid job.", "fields": exc.fields})
        result = jobs.jobs_submit(actor=actor, project=project, requests=[r for _, r in parsed]) if parsed else None
        accepted, refused = [], list(invalid)
        if result is not None:
            original = [i for i, _ in parsed]
            accepted = [{"index": original[a.index], "id": a.job_id, "site": a.site, "partition": a.partition}
                        for a in result.accepted]
            refused += [{"index": original[r.index], "code": r.code, "message": r.message, "fields": {}}
                        for r in result.refused]
        refused.sort(key=lambda r: r["index"])
        if single:
            if refused:
                first = refused[0]
                # The job itself is impossible: 400. Possible, but not now (offline, out of balance): 409.
                status = 409 if first["code"] in STATE_DEPENDENT_REFUSALS else 400
                return status, {"error": {"code": first["code"], "message": first["message"], "fields": {}}}
            # built from what was written (the caller sees its institution's jobs: no need to read it back)
            return 201, JobOutput(result.accepted[0].job).data
        return 200, {"batch": str(result.batch_id) if result else None, "accepted": accepted, "refused": refused}

    status, payload = run_idempotently(actor=actor, institution_id=project.institution_id,
                                       key=request.headers.get("Idempotency-Key"), body=body, run=run)
    return Response(payload, status=status)


class JobListView(BaseApiView):
    write_scope = "jobs:submit"

    class Filters(serializers.Serializer):
        state = serializers.CharField(required=False, max_length=16)
        project = serializers.IntegerField(required=False)
        site = serializers.CharField(required=False, max_length=32)

    @extend_schema(parameters=[Filters], responses=JobOutput(many=True), summary="Jobs you can see")
    def get(self, request):
        from federation.access import jobs_for

        filters = self.Filters(data=request.query_params)
        filters.is_valid(raise_exception=True)
        f = filters.validated_data
        qs = jobs_for(self.actor()).order_by("-submitted_at", "-id")
        if "state" in f:
            qs = qs.filter(state=f["state"])
        if "project" in f:
            qs = qs.filter(project_id=f["project"])
        if "site" in f:
            qs = qs.filter(site__code=f["site"])
        return self.paginate(qs, JobOutput)

    @extend_schema(request=_job_entry_schema(), responses={201: JobOutput},
                   summary="Submit one job (body: the job's fields and 'project'). Honours Idempotency-Key.")
    def post(self, request):
        body = dict(request.data) if isinstance(request.data, dict) else {}
        body.pop("project", None)
        return _submit(self, request, [body], single=True)


class JobBatchView(BaseApiView):
    write_scope = "jobs:submit"

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT,
                   summary="Submit up to 10,000 jobs: {'project': id, 'jobs': [...]}; per-entry results")
    def post(self, request):
        entries = request.data.get("jobs") if isinstance(request.data, dict) else None
        if not isinstance(entries, list):
            raise ValidationFailed("'jobs' must be a list of jobs.", code="invalid", fields={"jobs": ["A list."]})
        unknown = set(request.data) - {"project", "jobs"}
        if unknown:
            raise ValidationFailed("Unknown fields.", code="unknown_field", fields={k: ["Unknown field."]
                                                                                    for k in unknown})
        return _submit(self, request, entries, single=False)


class JobDetailView(BaseApiView):
    @extend_schema(responses=JobDetailOutput, summary="A job: state, where and why it was routed, its events")
    def get(self, request, job_id: int):
        from federation.access import get_job

        return Response(JobDetailOutput(get_job(self.actor(), job_id)).data)


class JobCancelView(BaseApiView):
    write_scope = "jobs:submit"

    @extend_schema(request=None, responses=JobOutput, summary="Cancel a job (the site is told)")
    def post(self, request, job_id: int):
        from federation.access import get_job
        from federation.jobs import job_cancel

        actor = self.actor()
        return Response(JobOutput(job_cancel(actor=actor, job=get_job(actor, job_id))).data)


# --- site quotas (the quota broker's shares) ----------------------------------------------------
class QuotaOutput(serializers.Serializer):
    id = serializers.IntegerField()
    allocation = serializers.IntegerField(source="allocation_id")
    project = serializers.CharField(source="allocation.project.title")
    institution = serializers.CharField(source="allocation.institution.code")
    site = serializers.CharField(source="site.code")
    resource_class = serializers.CharField(source="resource_class.code")
    state = serializers.CharField()
    amount = serializers.SerializerMethodField(help_text="Display units (core-hours, card-hours, TB-days)")
    proposed_amount = serializers.SerializerMethodField(help_text="What the broker last proposed (display units)")
    used = serializers.SerializerMethodField(help_text="Held or charged by the allocation's jobs here")
    amount_units = serializers.IntegerField(source="amount", help_text="Smallest units (unit-seconds, GB-days)")
    decided_by = serializers.CharField()
    decided_at = serializers.DateTimeField(allow_null=True)
    reason = serializers.CharField()
    updated_at = serializers.DateTimeField()

    def get_amount(self, q) -> str:
        return str(to_display(q.resource_class, q.amount))

    def get_proposed_amount(self, q) -> str:
        return str(to_display(q.resource_class, q.proposed_amount))

    def get_used(self, q) -> str:
        used = self.context.get("used", {}).get(q.pk, 0)
        return str(to_display(q.resource_class, used))


def _quota_page(view, queryset):
    from federation.quotas import share_used
    from portal.api.pagination import Pagination

    pages = Pagination()
    page = pages.paginate_queryset(queryset, view.request, view=view)
    return pages.get_paginated_response(QuotaOutput(page, many=True, context={"used": share_used(page)}).data)


class QuotaListView(BaseApiView):
    class Filters(serializers.Serializer):
        state = serializers.ChoiceField(choices=["proposed", "accepted", "declined", "withdrawn"], required=False)
        site = serializers.CharField(required=False, max_length=32)
        allocation = serializers.IntegerField(required=False)

    @extend_schema(parameters=[Filters], responses=QuotaOutput(many=True),
                   summary="Site quotas you can see: your allocations' shares, or the shares at the centres you run")
    def get(self, request):
        from federation.access import quotas_for

        filters = self.Filters(data=request.query_params)
        filters.is_valid(raise_exception=True)
        f = filters.validated_data
        qs = quotas_for(self.actor()).order_by("allocation_id", "resource_class__code", "site__code")
        if "state" in f:
            qs = qs.filter(state=f["state"])
        if "site" in f:
            qs = qs.filter(site__code=f["site"])
        if "allocation" in f:
            qs = qs.filter(allocation_id=f["allocation"])
        return _quota_page(self, qs)


class QuotaRespondView(BaseApiView):
    class Input(StrictInputSerializer):
        action = serializers.ChoiceField(choices=["accept", "modify", "decline"])
        amount = serializers.IntegerField(min_value=0, required=False,
                                          help_text="modify: the lower amount the centre accepts (display units)")
        reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")

    @extend_schema(request=Input, responses=QuotaOutput,
                   summary="A centre's answer to a proposed share: accept, modify (lower) or decline (operators)")
    def post(self, request, quota_id: int):
        from federation import quotas
        from federation.access import get_quota

        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        actor = self.actor()
        quota = quotas.quota_respond(actor=actor, quota=get_quota(actor, quota_id), **data.validated_data)
        fresh = get_quota(actor, quota.pk)
        return Response(QuotaOutput(fresh, context={"used": quotas.share_used([fresh])}).data)


class QuotaTransferView(BaseApiView):
    write_scope = "allocations:write"

    class Input(StrictInputSerializer):
        allocation = serializers.IntegerField()
        resource_class = serializers.CharField(max_length=48)
        from_site = serializers.CharField(max_length=32)
        to_site = serializers.CharField(max_length=32)
        amount = serializers.IntegerField(min_value=1, help_text="Display units (core-hours, card-hours, TB-days)")
        reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")

    @extend_schema(request=Input, responses=QuotaOutput(many=True),
                   summary="Move unused quota of an allocation from one centre to another (the PI)")
    def post(self, request):
        from allocations.access import get_allocation
        from federation import quotas

        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        actor = self.actor()
        allocation = get_allocation(actor, values["allocation"])
        resource_class = ResourceClass.objects.filter(code=values["resource_class"]).first()
        if resource_class is None:
            raise ValidationFailed("Unknown resource class.", code="unknown_resource_class",
                                   fields={"resource_class": ["Unknown."]})
        source, target = quotas.quota_transfer(
            actor=actor, allocation=allocation, resource_class=resource_class,
            from_site=selectors.get_site(values["from_site"]), to_site=selectors.get_site(values["to_site"]),
            amount=values["amount"], reason=values["reason"])
        rows = [source, target]
        return Response(QuotaOutput(rows, many=True, context={"used": quotas.share_used(rows)}).data)


class QuotaBrokerView(BaseApiView):
    @extend_schema(request=None, responses=OpenApiTypes.OBJECT,
                   summary="Broker every active allocation's unplaced remainder (committee, federation admins)")
    def post(self, request):
        from federation import quotas

        return Response({"brokered": quotas.broker_pending(actor=self.actor())})
