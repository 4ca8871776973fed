"""The quota broker: exact integer shares, capacity, preferences, prices, re-brokering, rebalancing."""

import dataclasses
import random

import pytest

from federation.broker import (
    BrokerError,
    BrokerPlan,
    ClassDemand,
    Share,
    SiteOffer,
    SiteResponse,
    broker,
    rebalance,
    rebroker,
)

GPU = "gpu:v100"
CPU = "cpu"


def offer(site_id: int, capacity: int, price: int = 2000, *, cls: str = GPU, brokered: int = 0, state: str = "online"):
    return SiteOffer(site_id, f"site{site_id}", cls, capacity, brokered, price, state)


def amounts(plan: BrokerPlan, cls: str = GPU) -> dict[int, int]:
    return {s.site_id: s.amount for s in plan.shares if s.resource_class == cls}


def assert_exact_and_within_capacity(plan: BrokerPlan, demands: list[ClassDemand], offers: list[SiteOffer]) -> None:
    for d in demands:
        assert plan.placed(d.resource_class) + plan.unplaced[d.resource_class] == d.amount
    remaining = {(o.site_id, o.resource_class): o.remaining for o in offers}
    for share in plan.shares:
        assert isinstance(share.amount, int) and share.amount >= 0
        assert share.amount <= remaining.get((share.site_id, share.resource_class), 0)


# --------------------------------------------------------------------------- brokering


def test_shares_are_integers_that_add_up_exactly_to_the_demand():
    offers = [offer(1, 1000), offer(2, 1000), offer(3, 1000)]
    plan = broker([ClassDemand(GPU, 1001)], offers)
    assert sum(amounts(plan).values()) == 1001 and plan.unplaced[GPU] == 0
    assert len(amounts(plan)) == 3  # equal prices: the load is spread, not piled on one site


def test_random_awards_always_add_up_and_fit():
    rng = random.Random(5)
    for _ in range(40):
        classes = [GPU, CPU, "gpu:dcu"][: rng.randint(1, 3)]
        offers = [
            offer(
                site,
                rng.randint(0, 5000),
                rng.choice((900, 1000, 1000, 1300)),
                cls=cls,
                brokered=rng.randint(0, 1000),
                state=rng.choice(("online", "online", "online", "draining")),
            )
            for cls in classes
            for site in rng.sample(range(1, 9), rng.randint(1, 6))
        ]
        demands = [ClassDemand(cls, rng.randint(0, 12000)) for cls in classes]
        plan = broker(demands, offers, preferences=tuple(f"site{s}" for s in rng.sample(range(1, 9), 2)))
        assert_exact_and_within_capacity(plan, demands, offers)


def test_committed_capacity_less_what_is_already_brokered_is_respected():
    offers = [offer(1, 1000, 1000, brokered=700), offer(2, 1000, 3000)]
    plan = broker([ClassDemand(GPU, 1000)], offers)
    assert amounts(plan) == {1: 300, 2: 700}


def test_preferences_decide_between_equal_prices():
    offers = [offer(1, 1000), offer(2, 1000), offer(3, 1000)]
    plan = broker([ClassDemand(GPU, 800)], offers, preferences=("site2",))
    assert amounts(plan) == {2: 800}
    plan = broker([ClassDemand(GPU, 1500)], offers, preferences=("site3", "site1"))
    assert amounts(plan)[3] == 1000 and amounts(plan)[1] > amounts(plan).get(2, 0)


def test_cheaper_sites_are_used_first():
    offers = [offer(1, 500, 3000), offer(2, 600, 1000), offer(3, 700, 2000)]
    plan = broker([ClassDemand(GPU, 1000)], offers)
    assert amounts(plan) == {2: 600, 3: 400}
    assert plan.cost == 600 * 1000 + 400 * 2000


def test_a_preference_does_not_outweigh_a_much_cheaper_site():
    offers = [offer(1, 1000, 1000), offer(2, 1000, 2000)]
    assert amounts(broker([ClassDemand(GPU, 500)], offers, preferences=("site2",))) == {1: 500}


def test_short_capacity_is_reported_as_unplaced_never_lost():
    offers = [offer(1, 300), offer(2, 200, state="offline"), offer(3, 100, cls=CPU)]
    demands = [ClassDemand(GPU, 1000), ClassDemand(CPU, 50), ClassDemand("storage", 7)]
    plan = broker(demands, offers)
    assert amounts(plan) == {1: 300}
    assert plan.unplaced == {GPU: 700, CPU: 0, "storage": 7}
    assert any("700 unplaced" in line for line in plan.explanation)


def test_sites_that_are_draining_or_offline_get_no_new_shares():
    offers = [offer(1, 1000, 1000, state="draining"), offer(2, 1000, 1000, state="offline"), offer(3, 1000, 3000)]
    assert amounts(broker([ClassDemand(GPU, 500)], offers)) == {3: 500}


def test_classes_are_brokered_independently():
    offers = [offer(1, 1000, 2000), offer(1, 5000, 100, cls=CPU), offer(2, 5000, 80, cls=CPU)]
    plan = broker([ClassDemand(GPU, 100), ClassDemand(CPU, 4000)], offers)
    assert amounts(plan) == {1: 100}
    assert amounts(plan, CPU) == {2: 4000}


def test_bad_inputs_are_refused():
    with pytest.raises(BrokerError):
        broker([ClassDemand(GPU, 1), ClassDemand(GPU, 2)], [offer(1, 10)])
    with pytest.raises(BrokerError):
        broker([ClassDemand(GPU, 1)], [offer(1, 10), offer(1, 20)])
    with pytest.raises(BrokerError):
        broker([ClassDemand(GPU, -1)], [offer(1, 10)])
    with pytest.raises(BrokerError):
        offer(1, 10, state="asleep")


# --------------------------------------------------------------------------- site answers


def test_a_declined_share_is_rebrokered_to_other_sites():
    offers = [offer(1, 600, 1000), offer(2, 1000, 1500), offer(3, 1000, 2000)]
    plan = broker([ClassDemand(GPU, 1000)], offers)
    assert amounts(plan) == {1: 600, 2: 400}
    after = rebroker(plan, [SiteResponse(1, GPU, "decline")], offers)
    assert 1 not in amounts(after)
    assert amounts(after) == {2: 1000}
    assert sum(amounts(after).values()) == 1000 and after.unplaced[GPU] == 0
    assert any("declined" in line for line in after.explanation)


def test_a_modified_share_keeps_the_new_amount_and_rebrokers_the_rest():
    offers = [offer(1, 600, 1000), offer(2, 1000, 1500), offer(3, 1000, 2000)]
    plan = broker([ClassDemand(GPU, 1000)], offers)
    after = rebroker(plan, [SiteResponse(1, GPU, "modify", 250), SiteResponse(2, GPU, "accept")], offers)
    assert amounts(after) == {1: 250, 2: 750}


def test_rebrokering_respects_what_the_plan_already_holds_at_a_site():
    offers = [offer(1, 500, 1000), offer(2, 500, 1500), offer(3, 2000, 3000)]
    plan = broker([ClassDemand(GPU, 900)], offers)
    assert amounts(plan) == {1: 500, 2: 400}
    after = rebroker(plan, [SiteResponse(1, GPU, "decline")], offers)
    # site 2 can take only 100 more; the rest goes to the dearer site 3
    assert amounts(after) == {2: 500, 3: 400}


def test_declines_that_leave_no_room_end_up_unplaced():
    offers = [offer(1, 500), offer(2, 500)]
    plan = broker([ClassDemand(GPU, 1000)], offers)
    after = rebroker(plan, [SiteResponse(1, GPU, "decline")], offers)
    assert amounts(after) == {2: 500} and after.unplaced[GPU] == 500


def test_rebrokering_also_retries_what_was_unplaced():
    plan = broker([ClassDemand(GPU, 1000)], [offer(1, 400)])
    assert plan.unplaced[GPU] == 600
    after = rebroker(plan, [], [offer(1, 400), offer(2, 1000)])
    assert amounts(after) == {1: 400, 2: 600} and after.unplaced[GPU] == 0


# --------------------------------------------------------------------------- outages


def test_an_outage_moves_only_the_unused_part_of_the_share():
    offers = [offer(1, 1000, 1000), offer(2, 1000, 1500), offer(3, 1000, 2000)]
    shares = [Share(1, GPU, 800, "site1", used=300), Share(2, GPU, 200, "site2", used=50)]
    after = rebalance(shares, {1}, offers)
    by_site = {s.site_id: s for s in after.shares}
    assert by_site[1].amount == 300 and by_site[1].used == 300  # the used part stays where it ran
    assert by_site[2].amount == 700 and by_site[2].used == 50  # 500 unused moved to the next cheapest
    assert sum(s.amount for s in after.shares) == 1000 and after.unplaced[GPU] == 0


def test_rebalancing_respects_the_other_sites_remaining_capacity():
    offers = [offer(1, 1000), offer(2, 600, brokered=100), offer(3, 300)]
    shares = [Share(1, GPU, 900, "site1", used=100), Share(2, GPU, 300, "site2")]
    after = rebalance(shares, {1}, offers)
    assert amounts(after) == {1: 100, 2: 500, 3: 300}  # site 2: 600 - 100 elsewhere - 300 held = 200 more
    assert after.unplaced[GPU] == 300


def test_a_draining_offer_triggers_rebalancing_too():
    offers = [offer(1, 1000, state="draining"), offer(2, 1000)]
    after = rebalance([Share(1, GPU, 600, "site1", used=600), Share(1, CPU, 50, "site1")], (), offers)
    assert amounts(after) == {1: 600}  # fully used: nothing to move
    assert after.unplaced[CPU] == 50  # no other site offers cpu


def test_rebalancing_a_plan_with_no_outage_changes_nothing():
    offers = [offer(1, 1000), offer(2, 1000)]
    plan = broker([ClassDemand(GPU, 1200)], offers)
    shares = [dataclasses.replace(s, used=10) for s in plan.shares]
    assert rebalance(shares, (), offers).shares == tuple(shares)
