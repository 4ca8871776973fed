"""REST API for identity and tenancy (/api/v1/). One view per resource, Input/Output serializers."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from accounts import services
from accounts.access import (
    audit_events_for,
    get_institution,
    get_membership,
    get_token,
    institutions_for,
    memberships_for,
    tokens_for,
)
from accounts.models import InstitutionKind, InstitutionRole, TokenScope
from portal.api.serializers import StrictInputSerializer
from portal.api.views import BaseApiView
from portal.errors import PermissionDenied


# --- who am I ----------------------------------------------------------------------------
class MeView(BaseApiView):
    class Output(serializers.Serializer):
        kind = serializers.CharField()
        email = serializers.EmailField(allow_null=True)
        full_name = serializers.CharField(allow_null=True)
        token = serializers.DictField(allow_null=True)
        federation_roles = serializers.ListField(child=serializers.CharField())
        memberships = serializers.ListField(child=serializers.DictField())

    @extend_schema(responses=Output, summary="The caller: a person or an institution system")
    def get(self, request):
        actor = self.actor()
        institutions = {i.pk: i for i in institutions_for(actor).filter(pk__in=actor.institution_ids())}
        memberships = [
            {"institution_id": pk, "institution_code": institutions[pk].code, "role": role}
            for pk, role in sorted(actor.memberships.items())
            if pk in institutions
        ]
        token = None
        if actor.is_token:
            token = {
                "prefix": actor.token.prefix,
                "name": actor.token.name,
                "scopes": actor.token.scopes,
                "expires_at": actor.token.expires_at,
            }
        data = {
            "kind": "token" if actor.is_token else "user",
            "email": actor.user.email if actor.user else None,
            "full_name": actor.user.full_name if actor.user else None,
            "token": token,
            "federation_roles": sorted(actor.federation_roles),
            "memberships": memberships,
        }
        return Response(self.Output(data).data)


# --- institutions ------------------------------------------------------------------------
class InstitutionOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    code = serializers.CharField()
    kind = serializers.CharField()
    email_domains = serializers.ListField(child=serializers.CharField())
    active = serializers.BooleanField()
    created_at = serializers.DateTimeField()


class InstitutionListView(BaseApiView):
    class Input(StrictInputSerializer):
        name = serializers.CharField(max_length=200)
        code = serializers.CharField(max_length=32)
        kind = serializers.ChoiceField(choices=InstitutionKind.choices)
        email_domains = serializers.ListField(
            child=serializers.CharField(max_length=253), required=False, default=list, max_length=20
        )

    @extend_schema(responses=InstitutionOutput(many=True), summary="Institutions visible to the caller")
    def get(self, request):
        return self.paginate(institutions_for(self.actor()), InstitutionOutput)

    @extend_schema(
        request=Input, responses={201: InstitutionOutput}, summary="Create an institution (federation admin)"
    )
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        institution = services.institution_create(actor=self.actor(), **data.validated_data)
        return Response(InstitutionOutput(institution).data, status=status.HTTP_201_CREATED)


class InstitutionDetailView(BaseApiView):
    class Input(StrictInputSerializer):
        name = serializers.CharField(max_length=200, required=False)
        code = serializers.CharField(max_length=32, required=False)
        kind = serializers.ChoiceField(choices=InstitutionKind.choices, required=False)
        email_domains = serializers.ListField(
            child=serializers.CharField(max_length=253), required=False, max_length=20
        )
        active = serializers.BooleanField(required=False)

    @extend_schema(responses=InstitutionOutput)
    def get(self, request, institution_id: int):
        return Response(InstitutionOutput(get_institution(self.actor(), institution_id)).data)

    @extend_schema(request=Input, responses=InstitutionOutput, summary="Update an institution")
    def patch(self, request, institution_id: int):
        actor = self.actor()
        institution = get_institution(actor, institution_id)
        data = self.Input(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        institution = services.institution_update(actor=actor, institution=institution, **data.validated_data)
        return Response(InstitutionOutput(institution).data)


# --- members -----------------------------------------------------------------------------
class MembershipOutput(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField(source="user.email")
    full_name = serializers.CharField(source="user.full_name")
    role = serializers.CharField()
    created_at = serializers.DateTimeField()


class MemberListView(BaseApiView):
    class Input(StrictInputSerializer):
        email = serializers.EmailField(max_length=254)
        full_name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")
        role = serializers.ChoiceField(choices=InstitutionRole.choices)

    @extend_schema(responses=MembershipOutput(many=True), summary="Members of an institution")
    def get(self, request, institution_id: int):
        actor = self.actor()
        institution = get_institution(actor, institution_id)
        return self.paginate(memberships_for(actor, institution).order_by("user__email"), MembershipOutput)

    @extend_schema(
        request=Input,
        responses={201: MembershipOutput},
        summary="Add a member (creates the account and emails an invitation if new)",
    )
    def post(self, request, institution_id: int):
        actor = self.actor()
        institution = get_institution(actor, institution_id)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.member_add(actor=actor, institution=institution, **data.validated_data)
        return Response(MembershipOutput(membership).data, status=status.HTTP_201_CREATED)


class MemberDetailView(BaseApiView):
    class Input(StrictInputSerializer):
        role = serializers.ChoiceField(choices=InstitutionRole.choices)

    @extend_schema(responses=MembershipOutput)
    def get(self, request, institution_id: int, membership_id: int):
        actor = self.actor()
        membership = get_membership(actor, get_institution(actor, institution_id), membership_id)
        return Response(MembershipOutput(membership).data)

    @extend_schema(request=Input, responses=MembershipOutput, summary="Change a member's role")
    def patch(self, request, institution_id: int, membership_id: int):
        actor = self.actor()
        membership = get_membership(actor, get_institution(actor, institution_id), membership_id)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.member_change_role(actor=actor, membership=membership, **data.validated_data)
        return Response(MembershipOutput(membership).data)

    @extend_schema(responses={204: None}, summary="Remove a member from the institution")
    def delete(self, request, institution_id: int, membership_id: int):
        actor = self.actor()
        membership = get_membership(actor, get_institution(actor, institution_id), membership_id)
        services.member_remove(actor=actor, membership=membership)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- API tokens --------------------------------------------------------------------------
class TokenOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField()
    scopes = serializers.ListField(child=serializers.CharField())
    status = serializers.CharField()
    created_by = serializers.EmailField(source="created_by.email", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True)


class TokenCreatedOutput(TokenOutput):
    token = serializers.CharField(help_text="The secret. Shown only in this response; store it now.")


class _PersonOnly:
    def check_person(self):
        if self.actor().is_token:
            raise PermissionDenied(
                "API tokens are managed by a person (portal or API session).", code="token_cannot_manage_tokens"
            )


class TokenListView(_PersonOnly, BaseApiView):
    class Input(StrictInputSerializer):
        name = serializers.CharField(max_length=100)
        scopes = serializers.ListField(
            child=serializers.ChoiceField(choices=TokenScope.choices), min_length=1, max_length=len(TokenScope)
        )
        expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)

    @extend_schema(responses=TokenOutput(many=True), summary="The institution's API tokens (never their secrets)")
    def get(self, request, institution_id: int):
        self.check_person()
        actor = self.actor()
        return self.paginate(tokens_for(actor, get_institution(actor, institution_id)), TokenOutput)

    @extend_schema(
        request=Input,
        responses={201: TokenCreatedOutput},
        summary="Create an API token; the secret is in this response only",
    )
    def post(self, request, institution_id: int):
        self.check_person()
        actor = self.actor()
        institution = get_institution(actor, institution_id)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        token, secret = services.token_create(actor=actor, institution=institution, **data.validated_data)
        body = TokenOutput(token).data | {"token": secret}
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})


class TokenRevokeView(_PersonOnly, BaseApiView):
    @extend_schema(request=None, responses=TokenOutput, summary="Revoke a token (immediately refused with 401)")
    def post(self, request, institution_id: int, token_id: int):
        self.check_person()
        actor = self.actor()
        token = get_token(actor, get_institution(actor, institution_id), token_id)
        return Response(TokenOutput(services.token_revoke(actor=actor, token=token)).data)


# --- audit -------------------------------------------------------------------------------
class AuditOutput(serializers.Serializer):
    id = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    actor = serializers.CharField(source="actor_label")
    ip = serializers.IPAddressField(allow_null=True)
    action = serializers.CharField()
    object_type = serializers.CharField()
    object_id = serializers.CharField()
    object_repr = serializers.CharField()
    before = serializers.JSONField(allow_null=True)
    after = serializers.JSONField(allow_null=True)


class AuditListView(BaseApiView):
    class Filters(serializers.Serializer):
        action = serializers.CharField(required=False, max_length=64)
        object_type = serializers.CharField(required=False, max_length=64)
        since = serializers.DateTimeField(required=False)
        until = serializers.DateTimeField(required=False)

    @extend_schema(
        parameters=[Filters],
        responses=AuditOutput(many=True),
        summary="The institution's audit trail (institution admins)",
    )
    def get(self, request, institution_id: int):
        actor = self.actor()
        institution = get_institution(actor, institution_id)
        filters = self.Filters(data=request.query_params)
        filters.is_valid(raise_exception=True)
        qs = audit_events_for(actor, institution)
        f = filters.validated_data
        if "action" in f:
            qs = qs.filter(action=f["action"])
        if "object_type" in f:
            qs = qs.filter(object_type=f["object_type"])
        if "since" in f:
            qs = qs.filter(created_at__gte=f["since"])
        if "until" in f:
            qs = qs.filter(created_at__lt=f["until"])
        return self.paginate(qs, AuditOutput)
