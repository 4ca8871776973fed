"""Portal pages for the federation's centres, mounted at /centres/ (namespace "centres")."""

from django.urls import path

from federation.views import sites

app_name = "centres"

urlpatterns = [
    path("", sites.site_list, name="site_list"),
    path("<slug:code>/", sites.site_detail, name="site_detail"),
    path("<slug:code>/state/", sites.site_set_state, name="site_set_state"),
]
