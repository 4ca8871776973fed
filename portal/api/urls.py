"""/api/v1/ routes."""

from django.urls import path

from accounts import api as accounts_api

urlpatterns = [
    path("me/", accounts_api.MeView.as_view(), name="me"),
    path("institutions/", accounts_api.InstitutionListView.as_view(), name="institution-list"),
    path("institutions/<int:institution_id>/", accounts_api.InstitutionDetailView.as_view(), name="institution-detail"),
    path("institutions/<int:institution_id>/members/", accounts_api.MemberListView.as_view(), name="member-list"),
    path(
        "institutions/<int:institution_id>/members/<int:membership_id>/",
        accounts_api.MemberDetailView.as_view(),
        name="member-detail",
    ),
    path("institutions/<int:institution_id>/tokens/", accounts_api.TokenListView.as_view(), name="token-list"),
    path(
        "institutions/<int:institution_id>/tokens/<int:token_id>/revoke/",
        accounts_api.TokenRevokeView.as_view(),
        name="token-revoke",
    ),
    path("institutions/<int:institution_id>/audit/", accounts_api.AuditListView.as_view(), name="audit-list"),
]

from allocations import api as alloc_api  # noqa: E402

urlpatterns += [
    path("resource-classes/", alloc_api.ResourceClassListView.as_view(), name="resource-class-list"),
    path("allocation-rules/", alloc_api.AllocationRulesView.as_view(), name="allocation-rules"),
    path("projects/", alloc_api.ProjectListView.as_view(), name="project-list"),
    path("projects/<int:project_id>/", alloc_api.ProjectDetailView.as_view(), name="project-detail"),
    path("projects/<int:project_id>/members/", alloc_api.ProjectMemberListView.as_view(), name="project-member-list"),
    path(
        "projects/<int:project_id>/members/<int:member_id>/",
        alloc_api.ProjectMemberDetailView.as_view(),
        name="project-member-detail",
    ),
    path("requests/", alloc_api.RequestListView.as_view(), name="request-list"),
    path("requests/<int:request_id>/", alloc_api.RequestDetailView.as_view(), name="request-detail"),
    path("requests/<int:request_id>/attachment/", alloc_api.RequestAttachmentView.as_view(), name="request-attachment"),
    path("requests/<int:request_id>/submit/", alloc_api.RequestSubmitView.as_view(), name="request-submit"),
    path("requests/<int:request_id>/withdraw/", alloc_api.RequestWithdrawView.as_view(), name="request-withdraw"),
    path("requests/<int:request_id>/assign/", alloc_api.RequestAssignView.as_view(), name="request-assign"),
    path("requests/<int:request_id>/decide/", alloc_api.RequestDecideView.as_view(), name="request-decide"),
    path("requests/<int:request_id>/history/", alloc_api.RequestHistoryView.as_view(), name="request-history"),
    path("requests/<int:request_id>/reviews/", alloc_api.RequestReviewsView.as_view(), name="request-reviews"),
    path("reviews/", alloc_api.ReviewListView.as_view(), name="review-list"),
    path("reviews/<int:review_id>/", alloc_api.ReviewDetailView.as_view(), name="review-detail"),
    path("reviews/<int:review_id>/submit/", alloc_api.ReviewSubmitView.as_view(), name="review-submit"),
    path("reviews/<int:review_id>/conflict/", alloc_api.ReviewConflictView.as_view(), name="review-conflict"),
    path("allocations/", alloc_api.AllocationListView.as_view(), name="allocation-list"),
    path("allocations/<int:allocation_id>/", alloc_api.AllocationDetailView.as_view(), name="allocation-detail"),
    path("allocations/<int:allocation_id>/state/", alloc_api.AllocationStateView.as_view(), name="allocation-state"),
    path("allocations/<int:allocation_id>/ledger/", alloc_api.LedgerListView.as_view(), name="ledger-list"),
    path("allocations/<int:allocation_id>/ledger/export/", alloc_api.LedgerExportView.as_view(), name="ledger-export"),
]

from federation import api as fed_api  # noqa: E402

urlpatterns += [
    path("sites/", fed_api.SiteListView.as_view(), name="site-list"),
    path("sites/<slug:site_code>/", fed_api.SiteDetailView.as_view(), name="site-detail"),
    path("sites/<slug:site_code>/state/", fed_api.SiteStateView.as_view(), name="site-state"),
    path("sites/<slug:site_code>/commitments/", fed_api.SiteCommitmentView.as_view(), name="site-commitments"),
    path("sites/<slug:site_code>/connection/", fed_api.SiteConnectionView.as_view(), name="site-connection"),
    path("sites/<slug:site_code>/ping/", fed_api.SitePingView.as_view(), name="site-ping"),
    path("applications/", fed_api.ApplicationListView.as_view(), name="application-list"),
]

urlpatterns += [
    path("quotas/", fed_api.QuotaListView.as_view(), name="quota-list"),
    path("quotas/transfer/", fed_api.QuotaTransferView.as_view(), name="quota-transfer"),
    path("quotas/broker/", fed_api.QuotaBrokerView.as_view(), name="quota-broker"),
    path("quotas/<int:quota_id>/respond/", fed_api.QuotaRespondView.as_view(), name="quota-respond"),
]

urlpatterns += [
    path("jobs/", fed_api.JobListView.as_view(), name="job-list"),
    path("jobs/batch/", fed_api.JobBatchView.as_view(), name="job-batch"),
    path("jobs/<int:job_id>/", fed_api.JobDetailView.as_view(), name="job-detail"),
    path("jobs/<int:job_id>/cancel/", fed_api.JobCancelView.as_view(), name="job-cancel"),
]

from portal.api.ping import PingView  # noqa: E402

urlpatterns += [path("ping/", PingView.as_view(), name="ping")]
