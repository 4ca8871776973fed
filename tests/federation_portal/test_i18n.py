"""The job and centre pages in Simplified Chinese: rendered pages, translated refusals, and a complete
catalogue of their own (federation/locale) that the compiled .mo matches."""


import pytest
from django.urls import reverse

from accounts.actors import system_actor
from federation import services
from federation.models import Job, Site

pytestmark = pytest.mark.django_db



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
