"""The federation's accelerator catalogue, until sites and partitions publish their own.

Families follow the card models of the real inventory in the Alibaba "openb" trace
(A10, P100, T4, V100M16/M32 and the undisclosed G1-G3, modelled here as domestic cards).
"""

from django.db import transaction

from federation.models import AcceleratorFamily, Ecosystem

FAMILIES = [
    # code, name, vendor, ecosystem, card models in the trace
    ("a10", "NVIDIA A10", "NVIDIA", Ecosystem.CUDA, ["A10"]),
    ("v100", "NVIDIA V100", "NVIDIA", Ecosystem.CUDA, ["V100M16", "V100M32"]),
    ("p100", "NVIDIA P100", "NVIDIA", Ecosystem.CUDA, ["P100"]),
    ("t4", "NVIDIA T4", "NVIDIA", Ecosystem.CUDA, ["T4"]),
    ("dcu", "Hygon DCU", "Hygon", Ecosystem.ROCM_HIP, ["G1", "G3"]),
    ("ascend", "Huawei Ascend 910", "Huawei", Ecosystem.CANN, ["G2"]),
]


@transaction.atomic
def ensure_accelerator_catalogue() -> list[AcceleratorFamily]:
    families = []
    for code, name, vendor, ecosystem, card_models in FAMILIES:
        family, _ = AcceleratorFamily.objects.update_or_create(
            code=code, defaults={"name": name, "vendor": vendor, "ecosystem": ecosystem, "models_included": card_models}
        )
        families.append(family)
    return families
