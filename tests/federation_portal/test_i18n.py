"""The job and centre pages in Simplified Chinese: rendered pages, translated refusals, and a complete
catalogue of their own (federation/locale) that the compiled .mo matches."""

import gettext
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from accounts.actors import system_actor
from federation import services
from federation.models import Job, Site

pytestmark = pytest.mark.django_db

APP_LOCALE = Path(settings.BASE_DIR) / "federation" / "locale" / "zh_Hans" / "LC_MESSAGES"


def test_the_job_pages_render_in_chinese(world, browser):
    client = browser(world.users["researcher_a"], language="zh-hans")
    page = client.get(reverse("jobs:job_list")).content.decode()
    assert 'lang="zh-CN"' in page
    for text in ("我的作业", "提交作业", "每节点内存（GB）", "运行时限（小时:分钟）", "首选中心", "已路由", "计算中心"):
        assert text in page, text
    assert "My jobs" not in page and "Submit a job" not in page
    page = client.get(reverse("jobs:job_detail", args=[world.objects["job"]])).content.decode()
    for text in ("为何选择此中心", "分数越低越好", "时间线", "资源需求", "取消作业", "已选中"):
        assert text in page, text
    assert "Why this centre" not in page


def test_a_refusal_is_shown_in_chinese(world, browser):
    before = Job.objects.count()
    response = browser(world.users["researcher_a"], language="zh-hans").post(reverse("jobs:job_list"), {
        "project": world.objects["project"], "name": "太大", "nodes": "1", "cores_per_node": "4",
        "memory_gb_per_node": "8", "gpus_per_node": "64", "walltime": "1:00"})
    assert response.status_code == 400
    page = response.content.decode()
    assert "作业未提交。" in page and "没有兼容的分区具备足够大或足够多的节点来运行该作业。" in page
    assert Job.objects.count() == before


def test_the_centre_pages_render_in_chinese(world, browser):
    services.site_set_state(actor=system_actor(), site=Site.objects.get(code="tianjin"), state="draining")
    client = browser(world.users["operator"], language="zh-hans")
    page = client.get(reverse("centres:site_list")).content.decode()
    for text in ("计算中心", "排空中", "在线", "每核时积分", "每卡时积分", "接收作业", "由您运维"):
        assert text in page, text
    page = client.get(reverse("centres:site_detail", args=["zhengzhou"])).content.decode()
    for text in ("运维此中心", "排空", "下线", "分区", "最长运行时限", "应用"):
        assert text in page, text
    response = client.post(reverse("centres:site_set_state", args=["zhengzhou"]), {"state": "draining"},
                           follow=True)
    assert "现为“排空中”状态" in response.content.decode()


def _entries() -> list[dict]:
    text = (APP_LOCALE / "django.po").read_text(encoding="utf-8")
    entries = []
    for block in text.split("\n\n")[1:]:
        if "msgid" not in block:
            continue

        def field(name, block=block):
            match = re.search(rf"^{re.escape(name)} ((?:\".*\"\n?)+)", block + "\n", re.M)
            if not match:
                return None
            raw = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', match.group(1)))
            return raw.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")

        entries.append({
            "refs": " ".join(line[3:] for line in block.splitlines() if line.startswith("#: ")),
            "fuzzy": "#, fuzzy" in block,
            "obsolete": "#~" in block,
            "context": field("msgctxt"),
            "msgid": field("msgid"),
            "plural": field("msgid_plural"),
            "msgstr": field("msgstr") if field("msgstr") is not None else field("msgstr[0]"),
        })
    return entries


def test_every_string_of_the_federation_pages_has_a_chinese_translation():
    entries = _entries()
    assert len(entries) > 150
    untranslated = [e["msgid"] for e in entries if not e["msgstr"] or e["fuzzy"] or e["obsolete"]]
    assert untranslated == []
    msgids = {e["msgid"] for e in entries}
    assert {"Jobs", "Centres"} <= msgids  # the top bar's labels (portal/context_processors.py)


def test_the_catalogue_holds_only_strings_of_the_federation_app():
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
        if entry["plural"]:
            assert compiled.ngettext(entry["msgid"], entry["plural"], 1) == entry["msgstr"], entry["msgid"]
        elif entry["context"]:
            assert compiled.pgettext(entry["context"], entry["msgid"]) == entry["msgstr"], entry["msgid"]
        else:
            assert compiled.gettext(entry["msgid"]) == entry["msgstr"], entry["msgid"]
