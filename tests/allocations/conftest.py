"""Fixtures for the allocation workflow tests: the resource catalogue, a PI's project made
through the API, enough reviewers from institutions that are neither A nor B, and a PI at B."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import FederationRoleKind, InstitutionRole
from allocations.catalogue import ensure_resource_classes
from allocations.models import ResourceClass
from federation.models import AcceleratorFamily
from tests.allocations import helpers
from tests.allocations.helpers import create_project
from tests.factories import make_institution, make_member, make_person

_catalogue_rows: list | None = None


def _copy(obj):
    return type(obj)(**{f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields})


@pytest.fixture(autouse=True)
def catalogue(db) -> dict[str, ResourceClass]:
    """The published conversion table (migrations do not create it). ensure_resource_classes() builds
    it in the first test; later tests get the same rows copied in two bulk inserts, which is faster."""
    global _catalogue_rows
    if _catalogue_rows is None or ResourceClass.objects.exists() or AcceleratorFamily.objects.exists():
        classes = ensure_resource_classes()
        _catalogue_rows = [_copy(f) for f in AcceleratorFamily.objects.all()] + [_copy(rc) for rc in classes]
    else:
        AcceleratorFamily.objects.bulk_create([_copy(r) for r in _catalogue_rows if isinstance(r, AcceleratorFamily)])
        ResourceClass.objects.bulk_create([_copy(r) for r in _catalogue_rows if isinstance(r, ResourceClass)])
    return {rc.code: rc for rc in ResourceClass.objects.select_related("family")}


@pytest.fixture(autouse=True)
def _one_client_per_person(monkeypatch):
    """Logging a test client in writes a session; reuse one logged-in client per person within a test
    (fed.client(...) and helpers.client_for(...) alike)."""
    helpers.forget_clients()
    monkeypatch.setattr("tests.factories.client_for", helpers.client_for)
    yield
    helpers.forget_clients()


@pytest.fixture(autouse=True)
def _no_static_file_scan(settings):
    """Each APIClient builds its own middleware; in autorefresh mode WhiteNoise does not index every
    static file on start-up (40 ms per client), it looks files up per request instead. API only here."""
    settings.WHITENOISE_AUTOREFRESH = True


@pytest.fixture
def today():
    return timezone.localdate()


@pytest.fixture
def project(fed, today) -> dict:
    """A project of institution A led by pi_a, created through POST /api/v1/projects/."""
    return create_project(fed.client("pi_a"), fed.a.pk, start=today, end=today + timedelta(days=1200))


@pytest.fixture
def reviewers(fed) -> list:
    """Four reviewers from four institutions other than A and B (fed's USTC reviewer first)."""
    extra = []
    for code in ("ICT", "NJU", "ZJU"):
        institution = make_institution(code, domains=[f"{code.lower()}.edu.cn"])
        extra.append(make_person(f"reviewer@{code.lower()}.edu.cn", FederationRoleKind.REVIEWER, institution))
    return [fed.users["reviewer"], *extra]


@pytest.fixture
def pi_b(fed):
    return make_member(fed.b, InstitutionRole.PI, "pi@tsinghua.edu.cn")
