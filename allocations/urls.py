"""Portal pages of the allocation workflow, mounted at /allocations/."""

from django.urls import path

from allocations.views import awards, committee, institution, projects, requests, reviews

app_name = "allocations"

urlpatterns = [
    # Allocations (awards) with their balances, usage and ledger.
    path("", awards.allocation_list, name="allocation_list"),
    path("<int:allocation_id>/", awards.allocation_detail, name="allocation_detail"),
    # Projects and their members.
    path("projects/", projects.project_list, name="project_list"),
    path("projects/new/", projects.project_create, name="project_create"),
    path("projects/<int:project_id>/", projects.project_detail, name="project_detail"),
    path("projects/<int:project_id>/members/", projects.project_member_add, name="project_member_add"),
    path(
        "projects/<int:project_id>/members/<int:member_id>/remove/",
        projects.project_member_remove,
        name="project_member_remove",
    ),
    # Requests: the PI's wizard, the list, the detail page and its actions.
    path("projects/<int:project_id>/requests/new/", requests.request_create, name="request_create"),
    path("requests/", requests.request_list, name="request_list"),
    path("requests/<int:request_id>/", requests.request_detail, name="request_detail"),
    path("requests/<int:request_id>/edit/", requests.request_edit, name="request_edit"),
    path("requests/<int:request_id>/submit/", requests.request_submit, name="request_submit"),
    path("requests/<int:request_id>/withdraw/", requests.request_withdraw, name="request_withdraw"),
    path("requests/<int:request_id>/attachment/", requests.request_attachment, name="request_attachment"),
    # Reviewers.
    path("reviews/", reviews.review_queue, name="review_queue"),
    path("reviews/<int:review_id>/", reviews.review_detail, name="review_detail"),
    path("reviews/<int:review_id>/conflict/", reviews.review_conflict, name="review_conflict"),
    # The allocation committee.
    path("committee/", committee.committee_home, name="committee_home"),
    path("committee/requests/<int:request_id>/", committee.decision_page, name="decision_page"),
    path("committee/requests/<int:request_id>/assign/", committee.assign_reviewer, name="assign_reviewer"),
    path("committee/requests/<int:request_id>/decide/", committee.decide, name="decide"),
    # Institution admins.
    path("institutions/<int:institution_id>/", institution.institution_overview, name="institution_overview"),
]
