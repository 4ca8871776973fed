"""The allocation pages in Simplified Chinese: rendered pages, translated refusals, and a complete
catalogue of their own (allocations/locale) that the compiled .mo matches."""

import gettext
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from allocations.models import AllocationRequest

pytestmark = pytest.mark.django_db

APP_LOCALE = Path(settings.BASE_DIR) / "allocations" / "locale" / "zh_Hans" / "LC_MESSAGES"


def test_the_wizard_renders_in_chinese(world, browser):
    page = (
        browser(world.users["pi_a"], language="zh-hans")
        .get(reverse("allocations:request_create", args=[world.objects["project"]]))
        .content.decode()
    )
    assert 'lang="zh-CN"' in page
    for text in (
        "新建资源申请",
        "您要申请什么？",
        "估算合计",
        "核时",
        "卡时",
        "探索级",
        "最多 10,000 积分",
        "保存为草稿",
    ):
        assert text in page, text
    assert "New allocation request" not in page


def test_the_allocation_page_and_the_committee_page_render_in_chinese(world, browser):
    page = (
        browser(world.users["pi_a"], language="zh-hans")
        .get(reverse("allocations:allocation_detail", args=[world.objects["allocation"]]))
        .content.decode()
    )
    for text in ("资源配额", "余额", "使用趋势", "账目流水", "下载 CSV", "可用积分"):
        assert text in page, text
    page = (
        browser(world.users["committee"], language="zh-hans")
        .get(reverse("allocations:decision_page", args=[world.objects["reviewed"]]))
        .content.decode()
    )
    for text in ("评审意见", "已收到 2 / 所需 2 份", "记录决定", "科学价值"):
        assert text in page, text


def test_service_refusals_are_shown_in_chinese(world, browser):
    o = world.objects
    response = browser(world.users["pi_a"], language="zh-hans").post(
        reverse("allocations:request_create", args=[o["project"]]),
        {
            "kind": "new",
            "tier": "explore",
            "title": "过大",
            "start": o["start"],
            "end": o["end"],
            "justification": "测试",
            "amount__cpu": "20000",
        },
    )
    assert response.status_code == 400
    assert "20,000 积分超出探索级上限 10,000 积分。" in response.content.decode()
    assert not AllocationRequest.objects.filter(title="过大").exists()


def _entries() -> list[dict]:
    text = (APP_LOCALE / "django.po").read_text(encoding="utf-8")
    entries = []
    for block in text.split("\n\n")[1:]:
        if "msgid" not in block:
            continue

        def field(name, block=block):
            match = re.search(rf'^{re.escape(name)} ((?:".*"\n?)+)', block + "\n", re.M)
            if not match:
                return None
            raw = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', match.group(1)))
            return raw.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")

        entries.append(
            {
                "refs": " ".join(line[3:] for line in block.splitlines() if line.startswith("#: ")),
                "fuzzy": "#, fuzzy" in block,
                "obsolete": "#~" in block,
                "context": field("msgctxt"),
                "msgid": field("msgid"),
                "msgstr": field("msgstr") if field("msgstr") is not None else field("msgstr[0]"),
            }
        )
    return entries


def test_every_string_of_the_allocation_pages_has_a_chinese_translation():
    entries = _entries()
    assert len(entries) > 300
    untranslated = [e["msgid"] for e in entries if not e["msgstr"] or e["fuzzy"] or e["obsolete"]]
    assert untranslated == []


def test_the_catalogue_holds_only_strings_of_the_allocations_app():
    for entry in _entries():
        for ref in entry["refs"].split():
            assert not ref.startswith(("..", "/")), ref
            assert ref.split(":")[0].endswith((".py", ".html")), ref


def test_translations_keep_their_placeholders():
    pattern = re.compile(r"%\(\w+\)s|\{\w+\}")
    for entry in _entries():
        assert sorted(pattern.findall(entry["msgid"])) == sorted(pattern.findall(entry["msgstr"])), entry["msgid"]


def test_the_compiled_catalogue_matches_the_po_file():
    with open(APP_LOCALE / "django.mo", "rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    for entry in _entries():
        if entry["context"]:
            assert compiled.pgettext(entry["context"], entry["msgid"]) == entry["msgstr"], entry["msgid"]
        else:
            assert compiled.gettext(entry["msgid"]) == entry["msgstr"], entry["msgid"]
