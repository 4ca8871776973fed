"""Portal test data, built through the real services (accounts.services) as the system actor."""

import re
from dataclasses import dataclass

import pytest
from django.conf import settings
from django.test import Client

from accounts import services
from accounts.actors import system_actor
from accounts.models import FederationRoleKind, Institution, InstitutionRole, User

PASSWORD = "correct-horse-battery-9"


def add_member(institution: Institution, email: str, role: str, full_name: str = "") -> User:
    membership = services.member_add(
        actor=system_actor(), institution=institution, email=email, role=role, full_name=full_name
    )
    user = membership.user
    user.set_password(PASSWORD)  # invited members choose a password through the reset link; tests skip that
    user.save(update_fields=["password"])
    return user


def client_as(user: User | None, language: str = "en") -> Client:
    client = Client()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    if user is not None:
        client.force_login(user)
    return client


def strip_tags(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@dataclass
class World:
    pku: Institution
    thu: Institution
    pku_admin: User
    pku_researcher: User
    pku_pi: User
    thu_admin: User
    reviewer: User
    fed_admin: User


@pytest.fixture
def world(db) -> World:
    actor = system_actor()
    pku = services.institution_create(
        actor=actor, name="北京大学", code="PKU", kind="university", email_domains=["pku.edu.cn"]
    )
    thu = services.institution_create(
        actor=actor, name="清华大学", code="THU", kind="university", email_domains=["tsinghua.edu.cn"]
    )
    reviewer = add_member(pku, "reviewer@pku.edu.cn", InstitutionRole.RESEARCHER, "赵磊 Zhao Lei")
    services.federation_role_grant(actor=actor, user=reviewer, role=FederationRoleKind.REVIEWER)
    fed_admin = User.objects.create_user(email="fedadmin@scnet.example.cn", password=PASSWORD, full_name="郑华")
    services.federation_role_grant(actor=actor, user=fed_admin, role=FederationRoleKind.FEDERATION_ADMIN)
    return World(
        pku=pku,
        thu=thu,
        pku_admin=add_member(pku, "admin@pku.edu.cn", InstitutionRole.INSTITUTION_ADMIN, "张伟 Zhang Wei"),
        pku_researcher=add_member(pku, "researcher@pku.edu.cn", InstitutionRole.RESEARCHER, "李明 Li Ming"),
        pku_pi=add_member(pku, "pi@pku.edu.cn", InstitutionRole.PI, "王芳 Wang Fang"),
        thu_admin=add_member(thu, "admin@tsinghua.edu.cn", InstitutionRole.INSTITUTION_ADMIN, "刘洋 Liu Yang"),
        reviewer=reviewer,
        fed_admin=fed_admin,
    )


@pytest.fixture
def pku_admin_client(world) -> Client:
    return client_as(world.pku_admin)
