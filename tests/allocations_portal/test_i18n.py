"""The allocation pages in Simplified Chinese: rendered pages, translated refusals, and a complete
catalogue of their own (allocations/locale) that the compiled .mo matches."""


import pytest
from django.urls import reverse

from allocations.models import AllocationRequest

pytestmark = pytest.mark.django_db



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
