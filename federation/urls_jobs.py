"""Portal pages for jobs, mounted at /jobs/ (namespace "jobs")."""

from django.urls import path

from federation.views import jobs

app_name = "jobs"

urlpatterns = [
    path("", jobs.job_list, name="job_list"),
    path("<int:job_id>/", jobs.job_detail, name="job_detail"),
    path("<int:job_id>/cancel/", jobs.job_cancel, name="job_cancel"),
]
