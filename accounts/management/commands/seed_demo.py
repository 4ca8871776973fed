"""Seed a demo federation: institutions and one login per role. Idempotent: rerun freely."""

import importlib
import importlib.util

from django.apps import apps
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand
from django.db import transaction
from django.test.utils import override_settings

from accounts import services
from accounts.actors import system_actor
from accounts.models import FederationRoleKind, Institution, InstitutionRole, Membership, User

INSTITUTIONS = [
    ("北京大学", "PKU", "university", ["pku.edu.cn"]),
    ("清华大学", "THU", "university", ["tsinghua.edu.cn", "mails.tsinghua.edu.cn"]),
    ("中国科学技术大学", "USTC", "university", ["ustc.edu.cn", "mail.ustc.edu.cn"]),
    ("中国科学院计算技术研究所", "ICT", "institute", ["ict.ac.cn"]),
    ("华大基因", "BGI", "enterprise", ["genomics.cn"]),
]

# (email, full name, institution code or None, institution role or None, federation role or None, what for)
DEMO_USERS = [
    ("researcher@pku.edu.cn", "李明 Li Ming", "PKU", InstitutionRole.RESEARCHER, None, "researcher"),
    ("pi@pku.edu.cn", "王芳 Wang Fang", "PKU", InstitutionRole.PI, None, "PI"),
    ("admin@pku.edu.cn", "张伟 Zhang Wei", "PKU", InstitutionRole.INSTITUTION_ADMIN, None, "institution admin"),
    ("pi@tsinghua.edu.cn", "陈静 Chen Jing", "THU", InstitutionRole.PI, None, "PI (another tenant)"),
    (
        "admin@tsinghua.edu.cn",
        "刘洋 Liu Yang",
        "THU",
        InstitutionRole.INSTITUTION_ADMIN,
        None,
        "institution admin (another tenant)",
    ),
    (
        "reviewer@ustc.edu.cn",
        "赵磊 Zhao Lei",
        "USTC",
        InstitutionRole.RESEARCHER,
        FederationRoleKind.REVIEWER,
        "reviewer",
    ),
    ("reviewer2@ict.ac.cn", "孙丽 Sun Li", "ICT", InstitutionRole.RESEARCHER, FederationRoleKind.REVIEWER, "reviewer"),
    ("committee@scnet.example.cn", "周强 Zhou Qiang", None, None, FederationRoleKind.COMMITTEE, "allocation committee"),
    ("operator@scnet.example.cn", "吴军 Wu Jun", None, None, FederationRoleKind.SITE_OPERATOR, "site operator"),
    (
        "fedadmin@scnet.example.cn",
        "郑华 Zheng Hua",
        None,
        None,
        FederationRoleKind.FEDERATION_ADMIN,
        "federation admin",
    ),
]


class Command(BaseCommand):
    help = "Create (or complete) the demo federation and one demo login per role."

    def add_arguments(self, parser):
        parser.add_argument("--quiet", action="store_true", help="Print nothing but errors.")

    def handle(self, *args, quiet=False, **options):
        # Demo data must not email the demo people (the console backend would flood the output).
        with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
            with transaction.atomic():
                self._seed(quiet)
        if not quiet:
            password = settings.SUANWANG["DEMO_PASSWORD"]
            self.stdout.write(self.style.SUCCESS(f"Demo federation ready. Demo logins (password: {password}):"))
            for email, _, code, _, _, what in DEMO_USERS:
                self.stdout.write(f"  {what:<36} {email}" + (f"  [{code}]" if code else ""))

    def _seed(self, quiet: bool) -> None:
        actor = system_actor()
        password = settings.SUANWANG["DEMO_PASSWORD"]
        encoded = None
        institutions = {}
        for name, code, kind, domains in INSTITUTIONS:
            institution = Institution.objects.filter(code=code).first()
            if institution is None:
                institution = services.institution_create(
                    actor=actor, name=name, code=code, kind=kind, email_domains=domains
                )
            institutions[code] = institution

        for email, full_name, code, role, federation_role, _ in DEMO_USERS:
            user = User.objects.filter(email=email).first()
            if user is None:
                user = User.objects.create_user(email=email, full_name=full_name)
                # One PBKDF2 run for all demo accounts (they share the published demo password).
                encoded = encoded or make_password(password)
                User.objects.filter(pk=user.pk).update(password=encoded)
            if code and not Membership.objects.filter(user=user, institution=institutions[code]).exists():
                services.member_add(actor=actor, institution=institutions[code], email=email, role=role)
            if federation_role:
                services.federation_role_grant(actor=actor, user=user, role=federation_role)
            if federation_role == FederationRoleKind.FEDERATION_ADMIN and not user.is_staff:
                user.is_staff = user.is_superuser = True
                user.save(update_fields=["is_staff", "is_superuser"])

        # Each app may add its own demo data in <app>/demo.py: seed(actor=, institutions=, stdout=).
        for app_config in apps.get_app_configs():
            if importlib.util.find_spec(f"{app_config.name}.demo") is not None:
                module = importlib.import_module(f"{app_config.name}.demo")
                module.seed(actor=actor, institutions=institutions, stdout=None if quiet else self.stdout)
