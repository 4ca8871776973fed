"""Demo data for allocations (called by ``manage.py seed_demo``): idempotent."""

from datetime import timedelta

from django.utils import timezone

from accounts.actors import Actor
from accounts.models import User
from allocations import projects, workflow
from allocations.catalogue import ensure_resource_classes
from allocations.models import Discipline, Project


def seed(*, actor, institutions, stdout=None) -> None:
    ensure_resource_classes()
    pi = User.objects.filter(email="pi@pku.edu.cn").first()
    if pi is None or Project.objects.filter(pi=pi).exists():
        return
    today = timezone.localdate()
    pi_actor = Actor(user=pi)
    project = projects.project_create(
        actor=pi_actor,
        institution_id=institutions["PKU"].pk,
        title="蛋白质结构预测 Protein structure prediction",
        abstract="AlphaFold-style structure prediction for membrane proteins of the PKU structural biology lab.",
        discipline=Discipline.LIFE,
        start=today - timedelta(days=30),
        end=today + timedelta(days=700),
    )
    projects.project_member_add(actor=pi_actor, project=project, email="researcher@pku.edu.cn")

    explore = workflow.request_create(
        actor=pi_actor,
        project=project,
        kind="new",
        tier="explore",
        title="Pilot runs",
        justification="Benchmark the pipeline on 50 targets before the full campaign.",
        amounts={"cpu": 2000, "gpu:v100": 400},
        start=today,
        end=today + timedelta(days=180),
        # The demo operator runs these two centres: the broker proposes shares there for them to answer.
        site_preferences=["zhengzhou", "tianjin"],
    )
    workflow.request_submit(actor=pi_actor, request=explore)

    standard = workflow.request_create(
        actor=pi_actor,
        project=project,
        kind="new",
        tier="standard",
        title="Full prediction campaign",
        justification="Predict 12,000 structures; scaling study attached in the pilot report.",
        amounts={"cpu": 50000, "gpu:v100": 8000, "storage": 200},
        start=today + timedelta(days=7),
        end=today + timedelta(days=365),
    )
    workflow.request_submit(actor=pi_actor, request=standard)
    if stdout:
        stdout.write("  demo project with an explore allocation and a standard request under review")
