from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from portal.api.errors import json_404
from portal.health import healthz
from portal.views.auth import set_language

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/", include(("portal.api.urls", "api"), namespace="api")),
    re_path(r"^api/", json_404),
    path("admin/", admin.site.urls),
    path("i18n/setlang/", set_language, name="set_language"),
    path("allocations/", include("allocations.urls")),
    path("jobs/", include("federation.urls_jobs")),
    path("centres/", include("federation.urls_sites")),
    path("", include("portal.urls_portal")),
]
