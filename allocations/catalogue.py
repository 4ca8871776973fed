"""The published conversion table: national credits per unit of each resource class."""

from decimal import Decimal

from django.db import transaction

from allocations.models import ResourceClass, ResourceKind
from federation.catalogue import ensure_accelerator_catalogue

# 1 credit is about one CPU core-hour; GPU prices follow the cards' relative capability.
GPU_CREDITS_PER_CARD_HOUR = {"a10": "8", "v100": "15", "p100": "6", "t4": "4", "dcu": "10", "ascend": "12"}


@transaction.atomic
def ensure_resource_classes() -> list[ResourceClass]:
    rows = [
        ResourceClass.objects.update_or_create(
            code="cpu",
            defaults={
                "kind": ResourceKind.CPU,
                "name": "CPU",
                "unit": "core-hour",
                "scale": 3600,
                "credits_per_unit": Decimal("1"),
            },
        )[0],
        ResourceClass.objects.update_or_create(
            code="storage",
            defaults={
                "kind": ResourceKind.STORAGE,
                "name": "Storage",
                "unit": "TB-day",
                "scale": 1000,
                "credits_per_unit": Decimal("0.5"),
            },
        )[0],
    ]
    for family in ensure_accelerator_catalogue():
        rows.append(
            ResourceClass.objects.update_or_create(
                code=f"gpu:{family.code}",
                defaults={
                    "kind": ResourceKind.GPU,
                    "family": family,
                    "name": family.name,
                    "unit": "card-hour",
                    "scale": 3600,
                    "credits_per_unit": Decimal(GPU_CREDITS_PER_CARD_HOUR.get(family.code, "10")),
                },
            )[0]
        )
    return rows
