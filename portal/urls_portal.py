from django.urls import path

from portal.views import audit, auth, dashboard, federation, members, tokens

app_name = "portal"

urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    # Sign-in and the password reset flow. services.member_add mails new members a link to
    # /accounts/reset/<uidb64>/<token>/ to choose their password: keep that path.
    path("login/", auth.login, name="login"),
    path("logout/", auth.logout, name="logout"),
    path("accounts/password_reset/", auth.password_reset, name="password_reset"),
    path("accounts/password_reset/done/", auth.password_reset_done, name="password_reset_done"),
    path("accounts/reset/<uidb64>/<token>/", auth.password_reset_confirm, name="password_reset_confirm"),
    path("accounts/reset/done/", auth.password_reset_complete, name="password_reset_complete"),
    # Institution administration (404 for another tenant's id, 403 for a plain member).
    path("institutions/<int:institution_id>/members/", members.members, name="institution_members"),
    path(
        "institutions/<int:institution_id>/members/<int:membership_id>/role/",
        members.member_change_role,
        name="member_change_role",
    ),
    path(
        "institutions/<int:institution_id>/members/<int:membership_id>/remove/",
        members.member_remove,
        name="member_remove",
    ),
    path("institutions/<int:institution_id>/tokens/", tokens.tokens, name="institution_tokens"),
    path(
        "institutions/<int:institution_id>/tokens/<int:token_id>/revoke/",
        tokens.token_revoke,
        name="token_revoke",
    ),
    path("institutions/<int:institution_id>/audit/", audit.audit, name="institution_audit"),
    # Federation administration.
    path("federation/institutions/", federation.institutions, name="federation_institutions"),
]
