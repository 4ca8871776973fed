import gettext
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db

PO_FILE = Path(settings.BASE_DIR) / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"


def _switch(client: Client, language: str, next_url: str):
    return client.post("/i18n/setlang/", {"language": language, "next": next_url})


def test_the_language_switcher_turns_the_portal_chinese_and_back(world):
    client = Client()
    client.force_login(world.pku_admin)

    response = _switch(client, "zh-hans", reverse("portal:dashboard"))
    assert response.status_code == 302
    page = client.get(reverse("portal:dashboard")).content.decode()
    assert "您所在的机构" in page
    assert "工作台" in page
    assert "机构管理员" in page  # a model choice label from accounts.models
    assert 'lang="zh-CN"' in page

    _switch(client, "en", reverse("portal:dashboard"))
    page = client.get(reverse("portal:dashboard")).content.decode()
    assert "Your institutions" in page
    assert "Institution admin" in page
    assert "您所在的机构" not in page


def test_the_login_page_is_chinese_by_default_and_has_the_switcher(db):
    page = Client().get(reverse("portal:login")).content.decode()
    assert "登录算网" in page
    assert 'action="/i18n/setlang/"' in page
    assert 'name="language" value="en"' in page


def test_service_refusals_are_shown_in_chinese(world):
    client = Client()
    client.force_login(world.pku_admin)
    _switch(client, "zh-hans", "/")
    response = client.post(
        reverse("portal:institution_members", args=[world.pku.pk]),
        {"email": "researcher@pku.edu.cn", "role": "pi"},
    )
    assert response.status_code == 409
    assert "researcher@pku.edu.cn 已是北京大学的成员。" in response.content.decode()


def _unescape(po_string: str) -> str:
    return po_string.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")


def _portal_entries() -> dict[str, str]:
    """msgid -> msgstr for the .po entries that come from the portal (not other apps, not obsolete)."""
    entries = {}
    for block in PO_FILE.read_text(encoding="utf-8").split("\n\n")[1:]:
        if "#~" in block or "portal/" not in block:
            continue
        head, _, tail = block.partition("\nmsgstr ")
        msgid = _unescape("".join(re.findall(r'"(.*)"', head.split("msgid ", 1)[1])))
        msgstr = "" if "#, fuzzy" in block else _unescape("".join(re.findall(r'"(.*)"', tail)))
        entries[msgid] = msgstr
    return entries


def test_every_portal_string_has_a_chinese_translation():
    entries = _portal_entries()
    assert len(entries) > 100
    assert [msgid for msgid, msgstr in entries.items() if not msgstr] == []


def test_the_compiled_catalog_matches_the_po_file():
    with PO_FILE.with_suffix(".mo").open("rb") as mo:
        catalog = gettext.GNUTranslations(mo)
    stale = [msgid for msgid, msgstr in _portal_entries().items() if catalog.gettext(msgid) != msgstr]
    assert stale == [], "run: manage.py compilemessages"


@pytest.mark.django_db
def test_the_chosen_language_is_remembered_for_the_next_login(client, django_user_model):
    from accounts.models import User
    from tests.factories import PASSWORD

    user = User.objects.create_user(email="lang@pku.edu.cn", password=PASSWORD)
    client.force_login(user)
    client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    assert User.objects.get(pk=user.pk).preferred_language == "en"

    fresh = type(client)()
    response = fresh.post("/login/", {"username": "lang@pku.edu.cn", "password": PASSWORD})
    assert response.status_code == 302
    assert response.cookies["django_language"].value == "en"
