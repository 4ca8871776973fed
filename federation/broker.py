"""The quota broker: split an award across the sites that can serve it.

A pure core: plain Python and SciPy over dataclasses, no Django. A service feeds it the award's
demand per resource class and the sites' offers for the period, persists the ``Share``s it
returns as SiteQuotas, collects each site's answer (accept / modify / decline, as in ACCESS
exchanges) and calls ``rebroker``; when a site goes offline or drains it calls ``rebalance``.

Amounts are integers in each class's smallest unit (core-hours, card-hours, TB-days); prices are
credit milli-units per unit. ``SiteOffer.already_brokered`` is what the site has already committed
to *other* allocations; what this plan holds at a site is accounted for by the functions here.

The linear program (``scipy.optimize.linprog``, HiGHS), for every class ``c`` and every online
site ``s`` offering it, with ``a[c,s]`` the site's remaining committed capacity::

    minimise   Σ x[c,s] · (price[c,s] − bonus[c,s]) / p̄[c]              price, less the preference bonus
             + Σ spread · ∫₀^x[c,s] (u / a[c,s]) du                       load spreading (convex, piecewise)
             + Σ M · unplaced[c]                                          placing beats not placing
    subject to Σ_s x[c,s] + unplaced[c] = demand[c],   0 ≤ x[c,s] ≤ a[c,s],   unplaced[c] ≥ 0

* ``p̄[c]`` is the mean price of the class's offers, so every term is "fractions of a typical
  price" and the knobs mean the same for cheap and dear classes.
* ``bonus[c,s] = preference_bonus · p̄[c] · (n − rank) / n`` for the PI's rank-th preferred site
  (0 for others): preferences decide between similar prices, not against a much cheaper site.
* The spreading term charges ``spread · p̄[c] · (x/a)`` for the next unit once a fraction ``x/a`` of
  the site's remaining capacity is used. It is approximated by ``segments`` linear pieces of
  increasing marginal cost (a convex piecewise-linear function, so the LP fills them in order):
  sites at the same price share the load in proportion to their headroom instead of one being
  drained, while a site cheaper by more than ``spread`` of the mean price is still filled first.
* ``M`` (well above any per-unit cost) makes the solver place everything that fits; what does not
  is reported per class in ``unplaced`` — never dropped.

The LP's fractional optimum is rounded per class by largest remainder (ties to the lower
per-unit cost, then site id), so shares are integers that add up exactly to the placed amount and
never exceed a site's capacity.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
from scipy.optimize import linprog

ONLINE: Final = "online"
SITE_STATES: Final = frozenset({"online", "degraded", "draining", "offline"})
ACCEPTING_STATES: Final = frozenset({"online", "degraded"})
ACCEPT: Final = "accept"
MODIFY: Final = "modify"
DECLINE: Final = "decline"


class BrokerError(ValueError):
    """Inputs the broker cannot work with (duplicates, negative amounts, unknown states)."""


# --------------------------------------------------------------------------- inputs and outputs


@dataclass(frozen=True, slots=True)
class ClassDemand:
    resource_class: str
    amount: int


@dataclass(frozen=True, slots=True)
class SiteOffer:
    """A site's capacity for one resource class in the allocation period."""

    site_id: int
    site_code: str
    resource_class: str
    committed_capacity: int
    already_brokered: int
    price: int
    state: str = ONLINE

    def __post_init__(self) -> None:
        if self.state not in SITE_STATES:
            raise BrokerError(f"unknown site state {self.state!r}")
        if self.committed_capacity < 0 or self.already_brokered < 0 or self.price < 0:
            raise BrokerError("capacities and prices are not negative")

    @property
    def accepting(self) -> bool:
        return self.state in ACCEPTING_STATES

    @property
    def remaining(self) -> int:
        """Committed capacity not yet brokered to other allocations (0 for a site not accepting)."""
        return max(0, self.committed_capacity - self.already_brokered) if self.accepting else 0


@dataclass(frozen=True, slots=True)
class Share:
    """The part of one class of an award placed at one site; ``used`` is what jobs consumed of it."""

    site_id: int
    resource_class: str
    amount: int
    site_code: str = ""
    used: int = 0


@dataclass(frozen=True, slots=True)
class SiteResponse:
    """A site's answer to its share: accept it, modify it down to ``amount``, or decline it."""

    site_id: int
    resource_class: str
    action: str
    amount: int | None = None

    def __post_init__(self) -> None:
        if self.action not in {ACCEPT, MODIFY, DECLINE}:
            raise BrokerError(f"unknown response {self.action!r}")
        if self.action == MODIFY and (self.amount is None or self.amount < 0):
            raise BrokerError("a modification names the amount the site accepts")


@dataclass(frozen=True, slots=True)
class BrokerPolicy:
    """Knobs of the objective, as fractions of the class's mean price (see the module docstring)."""

    preference_bonus: float = 0.10
    spread: float = 0.05
    segments: int = 4


DEFAULT_POLICY: Final = BrokerPolicy()


@dataclass(frozen=True, slots=True)
class BrokerPlan:
    """Shares per site and class, what could not be placed, and how the solver got there.

    ``unplaced`` has an entry for every class the plan covers (0 when all placed). ``cost`` is
    Σ amount × price over the shares whose site has an offer (credit milli-units, exact).
    ``objective`` is the LP optimum of the last solve, in normalised units (see the module docstring).
    """

    shares: tuple[Share, ...]
    unplaced: Mapping[str, int]
    objective: float
    cost: int
    explanation: tuple[str, ...] = field(default=())

    def placed(self, resource_class: str) -> int:
        return sum(s.amount for s in self.shares if s.resource_class == resource_class)

    def share_at(self, site_id: int, resource_class: str) -> int:
        return sum(s.amount for s in self.shares if s.site_id == site_id and s.resource_class == resource_class)


# --------------------------------------------------------------------------- the solver


@dataclass(slots=True)
class _Solution:
    amounts: dict[tuple[int, str], int]  # (site_id, class) -> new amount
    unplaced: dict[str, int]
    objective: float


def _preference_ranks(preferences: Sequence[str]) -> dict[str, int]:
    ranks: dict[str, int] = {}
    for rank, code in enumerate(preferences):
        ranks.setdefault(code, rank)
    return ranks


def _unit_costs(offers: Sequence[SiteOffer], preferences: Sequence[str], policy: BrokerPolicy) -> list[float]:
    """(price − bonus) / mean price for each offer of one class."""
    mean_price = sum(o.price for o in offers) / len(offers) if offers else 0.0
    scale = mean_price if mean_price > 0 else 1.0
    ranks = _preference_ranks(preferences)
    n = len(ranks)
    costs = []
    for offer in offers:
        rank = ranks.get(offer.site_code)
        bonus = policy.preference_bonus * scale * (n - rank) / n if rank is not None else 0.0
        costs.append((offer.price - bonus) / scale)
    return costs


def _apportion(
    target: int, values: Sequence[float], caps: Sequence[int], tie_keys: Sequence[tuple[float, int]]
) -> list[int]:
    """Integers ≤ ``caps`` adding up exactly to ``target`` (≤ Σ caps), nearest ``values``: largest remainder.

    Units missing after flooring go one each to the largest fractional parts (ties: lower
    ``tie_keys``); should the solver's tolerance leave more than that, to the cheapest spare
    capacity. Units over go from the smallest fractional parts, dearest first.
    """
    n = len(values)
    clipped = [min(max(v, 0.0), float(cap)) for v, cap in zip(values, caps, strict=True)]
    amounts = [min(cap, math.floor(v + 1e-9)) for v, cap in zip(clipped, caps, strict=True)]
    fractions = [v - a for v, a in zip(clipped, amounts, strict=True)]
    remainder = target - sum(amounts)
    if remainder > 0:
        for i in sorted(range(n), key=lambda i: (-fractions[i], tie_keys[i])):
            if remainder == 0:
                break
            if fractions[i] > 1e-9 and amounts[i] < caps[i]:
                amounts[i] += 1
                remainder -= 1
        for i in sorted(range(n), key=lambda i: tie_keys[i]):
            if remainder == 0:
                break
            step = min(remainder, caps[i] - amounts[i])
            amounts[i] += step
            remainder -= step
        if remainder:
            raise BrokerError("target exceeds capacity")  # callers never ask for more than Σ caps
    elif remainder < 0:
        for i in sorted(range(n), key=lambda i: (fractions[i], -tie_keys[i][0], -tie_keys[i][1])):
            take = min(amounts[i], -remainder)
            amounts[i] -= take
            remainder += take
            if remainder == 0:
                break
    return amounts


def _solve(
    demand: Mapping[str, int],
    offers: Sequence[SiteOffer],
    available: Mapping[tuple[int, str], int],
    preferences: Sequence[str],
    policy: BrokerPolicy,
) -> _Solution:
    """Place ``demand`` per class over ``offers`` with ``available`` capacity per (site, class)."""
    by_class: dict[str, list[SiteOffer]] = {}
    for offer in offers:
        if available.get((offer.site_id, offer.resource_class), 0) > 0 and offer.resource_class in demand:
            by_class.setdefault(offer.resource_class, []).append(offer)
    classes = [c for c in sorted(demand) if demand[c] > 0]
    segments = max(1, policy.segments)

    # columns: per class, per offer, per segment; then one "unplaced" column per class
    costs: list[float] = []
    upper: list[float] = []
    rows: list[int] = []
    owners: list[tuple[str, int]] = []  # (class, offer number within the class) per segment column
    unit_costs: dict[str, list[float]] = {}
    for row, c in enumerate(classes):
        class_offers = sorted(by_class.get(c, []), key=lambda o: o.site_id)
        by_class[c] = class_offers
        unit_costs[c] = _unit_costs(class_offers, preferences, policy)
        for n, offer in enumerate(class_offers):
            cap = available[(offer.site_id, c)]
            for j in range(segments):
                costs.append(unit_costs[c][n] + policy.spread * (j + 0.5) / segments)
                upper.append(cap / segments)
                rows.append(row)
                owners.append((c, n))
    n_segment_columns = len(costs)
    big_m = 10.0 * (max((abs(x) for x in costs), default=0.0) + 1.0)
    for row, c in enumerate(classes):
        costs.append(big_m)
        upper.append(float(demand[c]))
        rows.append(row)

    amounts: dict[tuple[int, str], int] = {}
    unplaced = {c: max(0, demand[c]) for c in demand}
    if not classes:
        return _Solution(amounts, unplaced, 0.0)

    a_eq = np.zeros((len(classes), len(costs)))
    a_eq[rows, range(len(costs))] = 1.0
    result = linprog(
        c=np.array(costs),
        A_eq=a_eq,
        b_eq=np.array([float(demand[c]) for c in classes]),
        bounds=list(zip([0.0] * len(costs), upper, strict=True)),
        method="highs",
    )
    if result.status != 0:  # bounded and always feasible (unplaced absorbs all), so this is a solver fault
        raise BrokerError(f"the LP solver failed: {result.message}")

    placed: dict[tuple[str, int], float] = {}
    for column in range(n_segment_columns):
        key = owners[column]
        placed[key] = placed.get(key, 0.0) + float(result.x[column])
    for c in classes:
        class_offers = by_class[c]
        caps = [available[(o.site_id, c)] for o in class_offers]
        target = min(demand[c], sum(caps))
        unplaced[c] = demand[c] - target
        values = [placed.get((c, n), 0.0) for n in range(len(class_offers))]
        ties = [(unit_costs[c][n], o.site_id) for n, o in enumerate(class_offers)]
        for offer, amount in zip(class_offers, _apportion(target, values, caps, ties), strict=True):
            if amount:
                amounts[(offer.site_id, c)] = amount
    return _Solution(amounts, unplaced, float(result.fun))


# --------------------------------------------------------------------------- assembling plans


def _index_offers(offers: Sequence[SiteOffer]) -> dict[tuple[int, str], SiteOffer]:
    index: dict[tuple[int, str], SiteOffer] = {}
    for offer in offers:
        key = (offer.site_id, offer.resource_class)
        if key in index:
            raise BrokerError(f"two offers for site {offer.site_id} and class {offer.resource_class}")
        index[key] = offer
    return index


def _assemble(
    kept: Mapping[tuple[int, str], Share],
    solution: _Solution,
    offers: Mapping[tuple[int, str], SiteOffer],
    classes: Collection[str],
    notes: Sequence[str],
    preferences: Sequence[str],
) -> BrokerPlan:
    merged: dict[tuple[int, str], Share] = dict(kept)
    for key, amount in solution.amounts.items():
        site_id, c = key
        previous = merged.get(key)
        code = offers[key].site_code if key in offers else (previous.site_code if previous else "")
        if previous is None:
            merged[key] = Share(site_id, c, amount, code)
        else:
            merged[key] = Share(site_id, c, previous.amount + amount, code, previous.used)
    shares = tuple(
        s for _, s in sorted(merged.items(), key=lambda kv: (kv[0][1], kv[0][0])) if s.amount > 0 or s.used > 0
    )
    all_classes = set(classes) | {s.resource_class for s in shares}
    unplaced = {c: solution.unplaced.get(c, 0) for c in sorted(all_classes)}
    cost = sum(
        s.amount * offers[(s.site_id, s.resource_class)].price
        for s in shares
        if (s.site_id, s.resource_class) in offers
    )
    ranks = _preference_ranks(preferences)
    explanation = list(notes)
    for c in sorted(all_classes):
        parts = []
        for s in shares:
            if s.resource_class != c:
                continue
            part = f"{s.site_code or s.site_id} {s.amount}"
            if (s.site_id, c) in offers:
                part += f" @{offers[(s.site_id, c)].price}"
            if s.site_code in ranks:
                part += f" (preferred #{ranks[s.site_code] + 1})"
            parts.append(part)
        line = f"{c}: " + (", ".join(parts) or "no shares")
        if unplaced[c]:
            line += f"; {unplaced[c]} unplaced (no remaining capacity)"
        explanation.append(line)
    return BrokerPlan(shares, unplaced, solution.objective, cost, tuple(explanation))


def _demand_map(demands: Sequence[ClassDemand]) -> dict[str, int]:
    demand: dict[str, int] = {}
    for d in demands:
        if d.amount < 0:
            raise BrokerError(f"negative demand for {d.resource_class}")
        if d.resource_class in demand:
            raise BrokerError(f"{d.resource_class} is demanded twice")
        demand[d.resource_class] = d.amount
    return demand


# --------------------------------------------------------------------------- public


def broker(
    demands: Sequence[ClassDemand],
    offers: Sequence[SiteOffer],
    preferences: Sequence[str] = (),
    policy: BrokerPolicy = DEFAULT_POLICY,
) -> BrokerPlan:
    """Split each class's demand across the sites offering it (see the module docstring)."""
    demand = _demand_map(demands)
    index = _index_offers(offers)
    available = {key: o.remaining for key, o in index.items()}
    solution = _solve(demand, list(index.values()), available, preferences, policy)
    notes = ["brokered: price less preference bonus, plus load spreading"]
    return _assemble({}, solution, index, demand, notes, preferences)


def _rebroker_released(
    kept: dict[tuple[int, str], Share],
    released: Mapping[str, int],
    offers: Sequence[SiteOffer],
    blocked_keys: Collection[tuple[int, str]],
    blocked_sites: Collection[int],
    preferences: Sequence[str],
    policy: BrokerPolicy,
    notes: list[str],
) -> BrokerPlan:
    index = _index_offers(offers)
    available = {}
    for key, offer in index.items():
        if key in blocked_keys or key[0] in blocked_sites:
            continue
        held = kept[key].amount if key in kept else 0
        available[key] = max(0, offer.remaining - held)
    solution = _solve(dict(released), list(index.values()), available, preferences, policy)
    classes = set(released) | {c for _, c in kept}
    return _assemble(kept, solution, index, classes, notes, preferences)


def rebroker(
    plan: BrokerPlan | Sequence[Share],
    responses: Sequence[SiteResponse],
    offers: Sequence[SiteOffer],
    preferences: Sequence[str] = (),
    policy: BrokerPolicy = DEFAULT_POLICY,
) -> BrokerPlan:
    """Apply the sites' answers and re-broker what they gave back.

    ``accept`` (or no answer) keeps a share; ``modify`` keeps ``min(amount, share)`` (a site cannot
    raise its own share: the rest of the award is already placed); ``decline`` keeps nothing —
    never less than what jobs already used. What is given back, plus what the plan could not place,
    goes to the other sites; a site that declined or modified a class gets no more of it.
    """
    shares = plan.shares if isinstance(plan, BrokerPlan) else tuple(plan)
    released: dict[str, int] = dict(plan.unplaced) if isinstance(plan, BrokerPlan) else {}
    answers = {(r.site_id, r.resource_class): r for r in responses}
    kept: dict[tuple[int, str], Share] = {}
    blocked: set[tuple[int, str]] = set()
    notes = []
    for share in shares:
        key = (share.site_id, share.resource_class)
        answer = answers.get(key)
        amount = share.amount
        if answer is not None and answer.action != ACCEPT:
            blocked.add(key)
            amount = min(share.amount, answer.amount or 0) if answer.action == MODIFY else 0
            amount = max(amount, min(share.used, share.amount))
            notes.append(
                f"{share.site_code or share.site_id} {answer.action}d {share.resource_class}: "
                f"keeps {amount} of {share.amount}"
            )
        released[share.resource_class] = released.get(share.resource_class, 0) + share.amount - amount
        kept[key] = Share(share.site_id, share.resource_class, amount, share.site_code, share.used)
    return _rebroker_released(kept, released, offers, blocked, (), preferences, policy, notes)


def rebalance(
    shares: Sequence[Share],
    offline_site_ids: Collection[int],
    offers: Sequence[SiteOffer],
    preferences: Sequence[str] = (),
    policy: BrokerPolicy = DEFAULT_POLICY,
) -> BrokerPlan:
    """Move the unused part of shares at offline or draining sites to the other sites.

    A share at a site in ``offline_site_ids`` — or whose offer says the site is draining or
    offline — shrinks to what its jobs used; the rest goes to accepting sites within their remaining
    capacity (less what this plan already holds there). What finds no room is ``unplaced``.
    """
    leaving = set(offline_site_ids) | {o.site_id for o in offers if not o.accepting}
    kept: dict[tuple[int, str], Share] = {}
    released: dict[str, int] = {}
    notes = []
    for share in shares:
        key = (share.site_id, share.resource_class)
        if key in kept:
            raise BrokerError(f"two shares for site {share.site_id} and class {share.resource_class}")
        amount = share.amount
        if share.site_id in leaving:
            amount = min(share.amount, share.used)
            if share.amount > amount:
                notes.append(
                    f"{share.site_code or share.site_id} is leaving: {share.amount - amount} unused "
                    f"{share.resource_class} moved, {amount} used stays"
                )
        released[share.resource_class] = released.get(share.resource_class, 0) + share.amount - amount
        kept[key] = Share(share.site_id, share.resource_class, amount, share.site_code, share.used)
    return _rebroker_released(kept, released, offers, (), leaving, preferences, policy, notes)
