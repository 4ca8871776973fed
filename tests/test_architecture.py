"""Rules enforced by tests, not by memory.

1. Entry points (API views, portal views, consumers, tasks) never read a tenant-owned model
   directly: they go through the access helpers (``*/access.py``), which scope by actor.
2. Entry points never write through the ORM: writes go through services.
3. The pure cores (router, broker, simulator) import nothing from Django.
"""

import ast
from pathlib import Path

import pytest
from django.apps import apps

ROOT = Path(__file__).resolve().parent.parent
ENTRY_POINT_GLOBS = ["*/api.py", "*/api/*.py", "*/views.py", "*/views/*.py", "*/consumers.py", "*/*/consumers.py",
                     "*/tasks.py"]
ORM_WRITE_METHODS = {
    "create",
    "bulk_create",
    "update",
    "bulk_update",
    "delete",
    "get_or_create",
    "update_or_create",
    "save",
}
MANAGER_ATTRS = {"objects", "_default_manager", "_base_manager"}


def tenant_owned_model_names() -> set[str]:
    return {m.__name__ for m in apps.get_models() if hasattr(m, "TENANT_FIELD")}


def entry_point_files() -> list[Path]:
    files = set()
    for pattern in ENTRY_POINT_GLOBS:
        files.update(p for p in ROOT.glob(pattern) if ".venv" not in p.parts)
    return sorted(files)


def tenant_reads(source: str, tenant_models: set[str]) -> list[str]:
    """Lines where a tenant-owned model is queried without an access helper."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in MANAGER_ATTRS
            and isinstance(node.value, ast.Name)
            and node.value.id in tenant_models
        ):
            found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in {"get_object_or_404", "get_list_or_404"}
            and node.args
            and isinstance(node.args[0], ast.Name)
            and node.args[0].id in tenant_models
        ):
            found.append(f"line {node.lineno}: {node.func.id}({node.args[0].id})")
    return found


def orm_writes(source: str) -> list[str]:
    """Lines where an entry point writes through a model manager or a model instance's save()."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in ORM_WRITE_METHODS:
            continue
        target = node.func.value
        chain = []
        while isinstance(target, (ast.Attribute, ast.Call)):
            if isinstance(target, ast.Attribute):
                chain.append(target.attr)
                target = target.value
            else:
                target = target.func
        if MANAGER_ATTRS & set(chain) or (node.func.attr == "save" and not chain and not node.args):
            found.append(f"line {node.lineno}: .{node.func.attr}()")
    return found


def test_the_detectors_catch_violations():
    bad = (
        "def view(request, pk):\n"
        "    m = Membership.objects.get(pk=pk)\n"
        "    t = get_object_or_404(ApiToken, pk=pk)\n"
        "    Membership.objects.filter(pk=pk).update(role='pi')\n"
        "    m.save()\n"
    )
    assert len(tenant_reads(bad, {"Membership", "ApiToken"})) == 3
    assert len(orm_writes(bad)) == 2
    good = "def view(request, pk):\n    m = get_membership(actor, institution, pk)\n    form.save()\n"
    assert tenant_reads(good, {"Membership"}) == []


def test_tenant_owned_models_are_declared():
    assert {"Institution", "Membership", "ApiToken", "AuditEvent"} <= tenant_owned_model_names()


def test_entry_points_exist_to_check():
    names = {str(p.relative_to(ROOT)) for p in entry_point_files()}
    assert "accounts/api.py" in names
    assert any(n.startswith("portal/views") for n in names)


@pytest.mark.parametrize("path", entry_point_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_entry_points_read_tenant_data_only_through_access_helpers(path):
    assert tenant_reads(path.read_text(), tenant_owned_model_names()) == []


@pytest.mark.parametrize("path", entry_point_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_entry_points_do_not_write_through_the_orm(path):
    assert orm_writes(path.read_text()) == []


PURE_CORES = ["federation/routing", "federation/broker.py", "federation/simulator.py", "federation/sim",
              "federation/trace_replay.py"]


def imported_modules(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def pure_core_files() -> list[Path]:
    files = []
    for entry in PURE_CORES:
        path = ROOT / entry
        files.extend(sorted(path.glob("*.py")) if path.is_dir() else [path] if path.exists() else [])
    return files


def test_pure_core_detector_catches_django():
    assert "django.db" in imported_modules("from django.db import models\nimport heapq\n")


@pytest.mark.parametrize("path", pure_core_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_cores_import_nothing_from_django_or_the_apps(path):
    forbidden = {"django", "rest_framework", "channels", "celery", "accounts", "allocations", "portal"}
    bad = {m for m in imported_modules(path.read_text()) if m.split(".")[0] in forbidden}
    bad |= {m for m in imported_modules(path.read_text())
            if m.startswith("federation.") and not m.startswith(("federation.sim", "federation.routing",
                                                                  "federation.broker", "federation.simulator"))}
    assert bad == set()
