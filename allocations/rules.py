"""Published allocation rules: tiers, review minimums, the credit cap, appeal window.

Pure data and arithmetic; the API publishes it at /api/v1/allocation-rules/.
"""

from dataclasses import asdict, dataclass
from decimal import Decimal

APPEAL_WINDOW_DAYS = 30
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
EXPIRY_WARNING_DAYS = (30, 7)


@dataclass(frozen=True)
class TierRule:
    code: str
    credit_cap: Decimal | None  # None: no cap
    min_reviews: int
    committee_decision: bool
    automatic_approval: bool
    max_duration_days: int


TIERS: dict[str, TierRule] = {
    "explore": TierRule("explore", Decimal(10_000), 0, False, True, 366),
    "standard": TierRule("standard", Decimal(500_000), 2, True, False, 366),
    "major": TierRule("major", Decimal(20_000_000), 3, True, False, 3 * 366),
}


def tier_rules_published() -> list[dict]:
    return [asdict(rule) | {"credit_cap": str(rule.credit_cap) if rule.credit_cap else None} for rule in TIERS.values()]


def credits_for(amounts: dict[str, int], prices: dict[str, Decimal]) -> Decimal:
    """National credits of amounts in display units, with the published prices per unit."""
    return sum((Decimal(amount) * prices[code] for code, amount in amounts.items()), Decimal(0))
