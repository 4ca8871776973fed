"""The federation's public catalogues (not tenant-owned): accelerator families."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class Ecosystem(models.TextChoices):
    CUDA = "cuda", "CUDA"
    ROCM_HIP = "rocm-hip", "ROCm/HIP"
    CANN = "cann", "CANN"
    CPU = "cpu", "CPU"


class AcceleratorFamily(models.Model):
    """A family of accelerator cards that allocations are awarded in (``gpu:<code>``)."""

    code = models.SlugField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=100)
    vendor = models.CharField(_("vendor"), max_length=64)
    ecosystem = models.CharField(_("software ecosystem"), max_length=16, choices=Ecosystem.choices)
    models_included = models.JSONField(_("card models"), default=list, blank=True)

    class Meta:
        ordering = ["code"]
        verbose_name = _("accelerator family")
        verbose_name_plural = _("accelerator families")

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"
