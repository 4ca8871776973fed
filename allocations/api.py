"""REST API for projects, allocation requests, reviews, decisions, allocations and the ledger."""

import csv

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from accounts.access import get_institution
from accounts.models import TokenScope, User
from allocations import access, ledger, projects, selectors, workflow
from allocations.models import (
    AllocationState,
    Decision,
    Discipline,
    LedgerKind,
    RequestKind,
    RequestState,
    Tier,
)
from allocations.rules import APPEAL_WINDOW_DAYS, MAX_ATTACHMENT_BYTES, tier_rules_published
from portal.api.pagination import Pagination
from portal.api.serializers import StrictInputSerializer
from portal.api.views import BaseApiView
from portal.errors import ValidationFailed

AMOUNTS_HELP = 'Whole display units per resource class, e.g. {"cpu": 10000, "gpu:v100": 500}.'


class AllocationsWriteView(BaseApiView):
    write_scope = TokenScope.ALLOCATIONS_WRITE


# --- catalogue ---------------------------------------------------------------------------
class ResourceClassListView(BaseApiView):
    class Output(serializers.Serializer):
        code = serializers.CharField()
        kind = serializers.CharField()
        name = serializers.CharField()
        unit = serializers.CharField()
        credits_per_unit = serializers.DecimalField(max_digits=12, decimal_places=4)
        family = serializers.CharField(source="family.code", allow_null=True, default=None)

    @extend_schema(responses=Output(many=True), summary="The published conversion table (credits per unit)")
    def get(self, request):
        return Response(self.Output(selectors.resource_classes(), many=True).data)


class AllocationRulesView(BaseApiView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Published tier rules and fields of science")
    def get(self, request):
        return Response(
            {
                "tiers": tier_rules_published(),
                "kinds": RequestKind.values,
                "disciplines": [{"code": c, "name": str(n)} for c, n in Discipline.choices],
                "appeal_window_days": APPEAL_WINDOW_DAYS,
                "max_attachment_bytes": MAX_ATTACHMENT_BYTES,
            }
        )


# --- projects ----------------------------------------------------------------------------
class ProjectOutput(serializers.Serializer):
    id = serializers.IntegerField()
    institution = serializers.CharField(source="institution.code")
    pi = serializers.EmailField(source="pi.email")
    title = serializers.CharField()
    abstract = serializers.CharField()
    discipline = serializers.CharField()
    start = serializers.DateField()
    end = serializers.DateField()
    created_at = serializers.DateTimeField()


class ProjectListView(BaseApiView):
    class Input(StrictInputSerializer):
        institution_id = serializers.IntegerField()
        title = serializers.CharField(max_length=200)
        abstract = serializers.CharField(max_length=5000)
        discipline = serializers.ChoiceField(choices=Discipline.choices)
        start = serializers.DateField()
        end = serializers.DateField()

    @extend_schema(responses=ProjectOutput(many=True), summary="Projects you can see")
    def get(self, request):
        return self.paginate(access.projects_for(self.actor()).order_by("-created_at", "-id"), ProjectOutput)

    @extend_schema(request=Input, responses={201: ProjectOutput}, summary="Create a project (PI)")
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        actor = self.actor()
        get_institution(actor, data.validated_data["institution_id"])
        project = projects.project_create(actor=actor, **data.validated_data)
        return Response(ProjectOutput(project).data, status=status.HTTP_201_CREATED)


class ProjectDetailView(BaseApiView):
    class Input(StrictInputSerializer):
        title = serializers.CharField(max_length=200, required=False)
        abstract = serializers.CharField(max_length=5000, required=False)
        discipline = serializers.ChoiceField(choices=Discipline.choices, required=False)
        start = serializers.DateField(required=False)
        end = serializers.DateField(required=False)

    @extend_schema(responses=ProjectOutput)
    def get(self, request, project_id: int):
        return Response(ProjectOutput(access.get_project(self.actor(), project_id)).data)

    @extend_schema(request=Input, responses=ProjectOutput, summary="Update a project (PI, institution admin)")
    def patch(self, request, project_id: int):
        actor = self.actor()
        project = access.get_project(actor, project_id)
        data = self.Input(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        return Response(
            ProjectOutput(projects.project_update(actor=actor, project=project, **data.validated_data)).data
        )


class ProjectMemberOutput(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField(source="user.email")
    full_name = serializers.CharField(source="user.full_name")
    role = serializers.CharField()
    added_at = serializers.DateTimeField()


class ProjectMemberListView(BaseApiView):
    class Input(StrictInputSerializer):
        email = serializers.EmailField(max_length=254)

    @extend_schema(responses=ProjectMemberOutput(many=True))
    def get(self, request, project_id: int):
        actor = self.actor()
        project = access.get_project(actor, project_id)
        return self.paginate(access.project_members_for(actor, project), ProjectMemberOutput)

    @extend_schema(
        request=Input, responses={201: ProjectMemberOutput}, summary="Add a member of the institution to the project"
    )
    def post(self, request, project_id: int):
        actor = self.actor()
        project = access.get_project(actor, project_id)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        member = projects.project_member_add(actor=actor, project=project, email=data.validated_data["email"])
        return Response(ProjectMemberOutput(member).data, status=status.HTTP_201_CREATED)


class ProjectMemberDetailView(BaseApiView):
    @extend_schema(responses={204: None}, summary="Remove a member from the project")
    def delete(self, request, project_id: int, member_id: int):
        actor = self.actor()
        member = access.get_project_member(actor, access.get_project(actor, project_id), member_id)
        projects.project_member_remove(actor=actor, member=member)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- requests ----------------------------------------------------------------------------
class RequestOutput(serializers.Serializer):
    id = serializers.IntegerField()
    project = serializers.IntegerField(source="project_id")
    project_title = serializers.CharField(source="project.title")
    institution = serializers.CharField(source="institution.code")
    kind = serializers.CharField()
    tier = serializers.CharField()
    state = serializers.CharField()
    title = serializers.CharField()
    justification = serializers.CharField()
    amounts = serializers.DictField(child=serializers.IntegerField())
    credits = serializers.DecimalField(max_digits=16, decimal_places=2)
    start = serializers.DateField()
    end = serializers.DateField()
    allocation = serializers.IntegerField(source="allocation_id", allow_null=True)
    appeal_of = serializers.IntegerField(source="appeal_of_id", allow_null=True)
    site_preferences = serializers.ListField(child=serializers.CharField())
    has_attachment = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    submitted_at = serializers.DateTimeField(allow_null=True)
    decided_at = serializers.DateTimeField(allow_null=True)

    def get_has_attachment(self, obj) -> bool:
        return bool(obj.attachment)


class RequestListView(AllocationsWriteView):
    class Input(StrictInputSerializer):
        project = serializers.IntegerField()
        kind = serializers.ChoiceField(choices=RequestKind.choices, default=RequestKind.NEW)
        tier = serializers.ChoiceField(choices=Tier.choices)
        title = serializers.CharField(max_length=200)
        justification = serializers.CharField(max_length=20000)
        amounts = serializers.DictField(
            child=serializers.IntegerField(), required=False, default=dict, help_text=AMOUNTS_HELP
        )
        start = serializers.DateField()
        end = serializers.DateField()
        allocation = serializers.IntegerField(required=False, allow_null=True, default=None)
        appeal_of = serializers.IntegerField(required=False, allow_null=True, default=None)
        site_preferences = serializers.ListField(
            child=serializers.CharField(max_length=32), required=False, default=list, max_length=20
        )

    class Filters(serializers.Serializer):
        state = serializers.ChoiceField(choices=RequestState.choices, required=False)
        tier = serializers.ChoiceField(choices=Tier.choices, required=False)
        kind = serializers.ChoiceField(choices=RequestKind.choices, required=False)
        project = serializers.IntegerField(required=False)

    @extend_schema(parameters=[Filters], responses=RequestOutput(many=True), summary="Allocation requests you can see")
    def get(self, request):
        filters = self.Filters(data=request.query_params)
        filters.is_valid(raise_exception=True)
        qs = access.requests_for(self.actor()).filter(**filters.validated_data).order_by("-created_at", "-id")
        return self.paginate(qs, RequestOutput)

    @extend_schema(request=Input, responses={201: RequestOutput}, summary="Create a draft request (PI)")
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        actor = self.actor()
        values = dict(data.validated_data)
        values["project"] = access.get_project(actor, values["project"])
        values["allocation"] = (
            access.get_allocation(actor, values["allocation"]) if values["allocation"] is not None else None
        )
        values["appeal_of"] = (
            access.get_request(actor, values["appeal_of"]) if values["appeal_of"] is not None else None
        )
        created = workflow.request_create(actor=actor, **values)
        return Response(RequestOutput(created).data, status=status.HTTP_201_CREATED)


class RequestDetailView(AllocationsWriteView):
    class Input(StrictInputSerializer):
        tier = serializers.ChoiceField(choices=Tier.choices, required=False)
        title = serializers.CharField(max_length=200, required=False)
        justification = serializers.CharField(max_length=20000, required=False)
        amounts = serializers.DictField(child=serializers.IntegerField(), required=False, help_text=AMOUNTS_HELP)
        start = serializers.DateField(required=False)
        end = serializers.DateField(required=False)
        site_preferences = serializers.ListField(
            child=serializers.CharField(max_length=32), required=False, max_length=20
        )

    @extend_schema(responses=RequestOutput)
    def get(self, request, request_id: int):
        return Response(RequestOutput(access.get_request(self.actor(), request_id)).data)

    @extend_schema(request=Input, responses=RequestOutput, summary="Edit a draft or a request sent back for revision")
    def patch(self, request, request_id: int):
        actor = self.actor()
        target = access.get_request(actor, request_id)
        data = self.Input(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        return Response(RequestOutput(workflow.request_update(actor=actor, request=target, **data.validated_data)).data)


class RequestAttachmentView(AllocationsWriteView):
    parser_classes = [MultiPartParser, FormParser]

    class Input(StrictInputSerializer):
        file = serializers.FileField()

    @extend_schema(
        request={"multipart/form-data": Input},
        responses=RequestOutput,
        summary="Upload the PDF attachment (multipart, field 'file', at most 10 MB)",
    )
    def post(self, request, request_id: int):
        actor = self.actor()
        target = access.get_request(actor, request_id)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(
            RequestOutput(
                workflow.request_update(actor=actor, request=target, attachment=data.validated_data["file"])
            ).data
        )


class _ReasonInput(StrictInputSerializer):
    reason = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")


class RequestSubmitView(AllocationsWriteView):
    @extend_schema(
        request=None,
        responses=RequestOutput,
        summary="Submit (explore: eligibility check and automatic approval; else reviewers assigned)",
    )
    def post(self, request, request_id: int):
        actor = self.actor()
        target = access.get_request(actor, request_id)
        return Response(RequestOutput(workflow.request_submit(actor=actor, request=target)).data)


class RequestWithdrawView(AllocationsWriteView):
    Input = _ReasonInput

    @extend_schema(request=_ReasonInput, responses=RequestOutput, summary="Withdraw a request (PI)")
    def post(self, request, request_id: int):
        actor = self.actor()
        target = access.get_request(actor, request_id)
        data = _ReasonInput(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(
            RequestOutput(
                workflow.request_withdraw(actor=actor, request=target, reason=data.validated_data["reason"])
            ).data
        )


class ReviewOutput(serializers.Serializer):
    id = serializers.IntegerField()
    request = serializers.IntegerField(source="request_id")
    request_title = serializers.CharField(source="request.title")
    reviewer = serializers.EmailField(source="reviewer.email")
    state = serializers.CharField()
    assigned_at = serializers.DateTimeField()
    merit = serializers.IntegerField(allow_null=True)
    feasibility = serializers.IntegerField(allow_null=True)
    readiness = serializers.IntegerField(allow_null=True)
    mean_score = serializers.FloatField(allow_null=True)
    comment = serializers.CharField()
    recommended_amounts = serializers.DictField(child=serializers.IntegerField())
    submitted_at = serializers.DateTimeField(allow_null=True)


class RequestAssignView(BaseApiView):
    write_scope = TokenScope.ADMIN

    class Input(StrictInputSerializer):
        reviewer = serializers.EmailField(required=False, help_text="A reviewer's email; omit to assign automatically")

    @extend_schema(
        request=Input,
        responses=ReviewOutput(many=True),
        summary="Assign a reviewer (committee), or automatically up to the tier's minimum",
    )
    def post(self, request, request_id: int):
        actor = self.actor()
        target = access.get_request(actor, request_id)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        email = data.validated_data.get("reviewer")
        if email:
            reviewer = User.objects.filter(email=email.strip().lower()).first()
            if reviewer is None:
                raise ValidationFailed("No such reviewer.", code="not_a_reviewer", fields={"reviewer": ["Unknown."]})
            reviews = [workflow.assign_reviewer(actor=actor, request=target, reviewer=reviewer)]
        else:
            reviews = workflow.auto_assign_reviewers(actor=actor, request=target)
        return Response(ReviewOutput(reviews, many=True).data)


class DecisionOutput(serializers.Serializer):
    id = serializers.IntegerField()
    outcome = serializers.CharField()
    amounts = serializers.DictField(child=serializers.IntegerField())
    reason = serializers.CharField()
    decided_by = serializers.CharField(source="decided_by_label")
    created_at = serializers.DateTimeField()


class RequestDecideView(BaseApiView):
    write_scope = TokenScope.ADMIN

    class Input(StrictInputSerializer):
        outcome = serializers.ChoiceField(choices=Decision.Outcome.choices)
        amounts = serializers.DictField(
            child=serializers.IntegerField(),
            required=False,
            default=dict,
            help_text="For an award: the amounts granted (at most what was asked).",
        )
        reason = serializers.CharField(max_length=5000)

    @extend_schema(request=Input, responses=RequestOutput, summary="Decide: award, reject or ask for revision")
    def post(self, request, request_id: int):
        actor = self.actor()
        target = access.get_request(actor, request_id)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(RequestOutput(workflow.decide(actor=actor, request=target, **data.validated_data)).data)


class RequestHistoryView(BaseApiView):
    class Output(serializers.Serializer):
        from_state = serializers.CharField()
        to_state = serializers.CharField()
        actor = serializers.CharField(source="actor_label")
        reason = serializers.CharField()
        created_at = serializers.DateTimeField()

    @extend_schema(responses=Output(many=True), summary="The request's timeline, and its decisions")
    def get(self, request, request_id: int):
        target = access.get_request(self.actor(), request_id)
        return Response(
            {
                "transitions": self.Output(target.transitions.all(), many=True).data,
                "decisions": DecisionOutput(target.decisions.all(), many=True).data,
            }
        )


class RequestReviewsView(BaseApiView):
    @extend_schema(
        responses=ReviewOutput(many=True),
        summary="Reviews side by side (committee); the PI sees them anonymised once decided",
    )
    def get(self, request, request_id: int):
        actor = self.actor()
        target = access.get_request(actor, request_id)
        if access.sees_everything(actor):
            return Response(ReviewOutput(target.reviews.select_related("reviewer", "request"), many=True).data)
        if target.state in (RequestState.APPROVED, RequestState.REJECTED, RequestState.REVISION_REQUESTED):
            rows = ReviewOutput(
                target.reviews.filter(state="submitted").select_related("reviewer", "request"), many=True
            ).data
            for n, row in enumerate(rows, 1):
                row["reviewer"] = f"reviewer {n}"
            return Response(rows)
        return Response([])


# --- reviews -----------------------------------------------------------------------------
class ReviewListView(BaseApiView):
    @extend_schema(responses=ReviewOutput(many=True), summary="Your review assignments (committee: all)")
    def get(self, request):
        qs = access.reviews_for(self.actor()).order_by("state", "-assigned_at", "-id")
        return self.paginate(qs, ReviewOutput)


class ReviewDetailView(BaseApiView):
    @extend_schema(responses=ReviewOutput)
    def get(self, request, review_id: int):
        return Response(ReviewOutput(access.get_review(self.actor(), review_id)).data)


class ReviewSubmitView(BaseApiView):
    class Input(StrictInputSerializer):
        merit = serializers.IntegerField(min_value=0, max_value=5)
        feasibility = serializers.IntegerField(min_value=0, max_value=5)
        readiness = serializers.IntegerField(min_value=0, max_value=5)
        comment = serializers.CharField(max_length=10000)
        recommended_amounts = serializers.DictField(child=serializers.IntegerField(), required=False, default=dict)

    @extend_schema(request=Input, responses=ReviewOutput, summary="Submit your review (scores 0-5)")
    def post(self, request, review_id: int):
        actor = self.actor()
        review = access.get_review(actor, review_id)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(ReviewOutput(workflow.review_submit(actor=actor, review=review, **data.validated_data)).data)


class ReviewConflictView(BaseApiView):
    class Input(StrictInputSerializer):
        reason = serializers.CharField(max_length=500)

    @extend_schema(
        request=Input,
        responses=ReviewOutput,
        summary="Declare a conflict of interest: the assignment is declined and replaced",
    )
    def post(self, request, review_id: int):
        actor = self.actor()
        review = access.get_review(actor, review_id)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        review = workflow.declare_conflict(actor=actor, review=review, reason=data.validated_data["reason"])
        return Response({"id": review.pk, "state": review.state})


# --- allocations and ledger --------------------------------------------------------------
class BalanceOutput(serializers.Serializer):
    resource_class = serializers.CharField()
    unit = serializers.CharField()
    awarded = serializers.DecimalField(max_digits=20, decimal_places=2)
    held = serializers.DecimalField(max_digits=20, decimal_places=2)
    charged = serializers.DecimalField(max_digits=20, decimal_places=2)
    available = serializers.DecimalField(max_digits=20, decimal_places=2)
    credits_available = serializers.DecimalField(max_digits=20, decimal_places=2)


class AllocationOutput(serializers.Serializer):
    id = serializers.IntegerField()
    project = serializers.IntegerField(source="project_id")
    project_title = serializers.CharField(source="project.title")
    institution = serializers.CharField(source="institution.code")
    origin_request = serializers.IntegerField(source="origin_id")
    state = serializers.CharField()
    start = serializers.DateField()
    end = serializers.DateField()
    balances = BalanceOutput(many=True, source="balance_rows")


def _with_balances(allocations) -> list:
    allocations = list(allocations)
    balances = selectors.balances_by_allocation([a.pk for a in allocations])
    for allocation in allocations:
        allocation.balance_rows = balances.get(allocation.pk, [])
    return allocations


class AllocationListView(BaseApiView):
    class Filters(serializers.Serializer):
        state = serializers.ChoiceField(choices=AllocationState.choices, required=False)
        project = serializers.IntegerField(required=False)

    @extend_schema(parameters=[Filters], responses=AllocationOutput(many=True), summary="Allocations with balances")
    def get(self, request):
        filters = self.Filters(data=request.query_params)
        filters.is_valid(raise_exception=True)
        paginator = Pagination()
        qs = access.allocations_for(self.actor()).filter(**filters.validated_data).order_by("-start", "-id")
        page = _with_balances(paginator.paginate_queryset(qs, request, view=self))
        return paginator.get_paginated_response(AllocationOutput(page, many=True).data)


class AllocationDetailView(BaseApiView):
    class Output(AllocationOutput):
        usage = serializers.ListField(child=serializers.DictField())

    @extend_schema(responses=Output, summary="An allocation: balances and usage over time")
    def get(self, request, allocation_id: int):
        allocation = _with_balances([access.get_allocation(self.actor(), allocation_id)])[0]
        allocation.usage = selectors.usage_over_time(allocation)
        return Response(self.Output(allocation).data)


class AllocationStateView(BaseApiView):
    write_scope = TokenScope.ADMIN

    class Input(StrictInputSerializer):
        state = serializers.ChoiceField(choices=AllocationState.choices)
        reason = serializers.CharField(max_length=500)

    @extend_schema(request=Input, responses=AllocationOutput, summary="Suspend, resume or expire (committee)")
    def post(self, request, allocation_id: int):
        actor = self.actor()
        allocation = access.get_allocation(actor, allocation_id)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        allocation = workflow.allocation_set_state(
            actor=actor,
            allocation=allocation,
            to_state=data.validated_data["state"],
            reason=data.validated_data["reason"],
        )
        return Response(AllocationOutput(_with_balances([allocation])[0]).data)


class LedgerOutput(serializers.Serializer):
    id = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    kind = serializers.CharField()
    resource_class = serializers.CharField(source="resource_class.code")
    amount = serializers.IntegerField(help_text="Signed, in smallest units (unit-seconds; storage: GB-days)")
    amount_display = serializers.SerializerMethodField()
    request = serializers.IntegerField(source="request_id", allow_null=True)
    job_ref = serializers.CharField()
    site = serializers.CharField(source="site_code", help_text="quota entries: the centre the units moved at")
    actor = serializers.CharField(source="actor_label")
    memo = serializers.CharField()

    def get_amount_display(self, obj) -> str:
        return str(ledger.to_display(obj.resource_class, obj.amount))


class LedgerFilters(serializers.Serializer):
    kind = serializers.ChoiceField(choices=LedgerKind.choices, required=False)
    resource_class = serializers.CharField(required=False, max_length=48)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)


def _filtered_ledger(actor, allocation_id, params):
    filters = LedgerFilters(data=params)
    filters.is_valid(raise_exception=True)
    f = filters.validated_data
    qs = access.ledger_for(actor, access.get_allocation(actor, allocation_id))
    if "kind" in f:
        qs = qs.filter(kind=f["kind"])
    if "resource_class" in f:
        qs = qs.filter(resource_class__code=f["resource_class"])
    if "since" in f:
        qs = qs.filter(created_at__gte=f["since"])
    if "until" in f:
        qs = qs.filter(created_at__lt=f["until"])
    return qs


class LedgerListView(BaseApiView):
    @extend_schema(parameters=[LedgerFilters], responses=LedgerOutput(many=True), summary="Ledger entries")
    def get(self, request, allocation_id: int):
        return self.paginate(_filtered_ledger(self.actor(), allocation_id, request.query_params), LedgerOutput)


class _Echo:
    def write(self, value):
        return value


class LedgerExportView(BaseApiView):
    @extend_schema(parameters=[LedgerFilters], responses={(200, "text/csv"): str}, summary="Ledger as CSV")
    def get(self, request, allocation_id: int):
        qs = _filtered_ledger(self.actor(), allocation_id, request.query_params).order_by("created_at", "id")
        writer = csv.writer(_Echo())

        def rows():
            yield writer.writerow(
                [
                    "id",
                    "created_at",
                    "kind",
                    "resource_class",
                    "amount_smallest_units",
                    "amount",
                    "unit",
                    "request",
                    "job_ref",
                    "actor",
                    "memo",
                ]
            )
            for e in qs.iterator(chunk_size=2000):
                rc = e.resource_class
                yield writer.writerow(
                    [
                        e.pk,
                        e.created_at.isoformat(),
                        e.kind,
                        rc.code,
                        e.amount,
                        ledger.to_display(rc, e.amount),
                        rc.unit,
                        e.request_id or "",
                        e.job_ref,
                        e.actor_label,
                        e.memo,
                    ]
                )

        response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="allocation-{allocation_id}-ledger.csv"'
        return response
