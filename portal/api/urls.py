"""/api/v1/ routes."""

from django.urls import path

from accounts import api as accounts_api

urlpatterns = [
    path("me/", accounts_api.MeView.as_view(), name="me"),
    path("institutions/", accounts_api.InstitutionListView.as_view(), name="institution-list"),
    path("institutions/<int:institution_id>/", accounts_api.InstitutionDetailView.as_view(), name="institution-detail"),
    path("institutions/<int:institution_id>/members/", accounts_api.MemberListView.as_view(), name="member-list"),
    path("institutions/<int:institution_id>/members/<int:membership_id>/", accounts_api.MemberDetailView.as_view(),
         name="member-detail"),
    path("institutions/<int:institution_id>/tokens/", accounts_api.TokenListView.as_view(), name="token-list"),
    path("institutions/<int:institution_id>/tokens/<int:token_id>/revoke/", accounts_api.TokenRevokeView.as_view(),
         name="token-revoke"),
    path("institutions/<int:institution_id>/audit/", accounts_api.AuditListView.as_view(), name="audit-list"),
]
