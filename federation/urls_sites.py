"""Portal pages for the federation's centres, mounted at /centres/ (namespace "centres")."""

from django.urls import path

from federation.views import board, quotas, sites

app_name = "centres"

urlpatterns = [
    path("", sites.site_list, name="site_list"),
    path("status/", board.status_board, name="status_board"),
    path("<slug:code>/", sites.site_detail, name="site_detail"),
    path("<slug:code>/state/", sites.site_set_state, name="site_set_state"),
    path("<slug:code>/ping/", sites.site_ping, name="site_ping"),
    path("<slug:code>/jobs/", board.site_jobs_fragment, name="site_jobs"),
    path("<slug:code>/quotas/<int:quota_id>/respond/", quotas.quota_respond, name="quota_respond"),
    path("quotas/allocations/<int:allocation_id>/", quotas.allocation_quotas, name="allocation_quotas"),
]
