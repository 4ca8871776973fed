"""REST API for the federation's public data and the centre operators' actions."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from allocations.ledger import to_display
from allocations.models import ResourceClass
from federation import selectors, services
from federation.models import SiteState
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
