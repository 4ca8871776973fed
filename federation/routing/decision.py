"""A routing decision and its two explanations: ``breakdown()`` (every compatible partition, as
objects, for people investigating a decision) and ``explain()`` (a compact dict, cheap enough to
persist with every job)."""

from __future__ import annotations

from dataclasses import dataclass, field

from federation.routing.filters import exclusion_detail
from federation.routing.model import (
    BOUNDED,
    CHOSEN,
    EXCLUDED,
    REASON_BY_STAGE,
    REFUSAL_MESSAGES,
    SCORED,
    CandidateScore,
    Stage,
)
from federation.routing.plans import HourView, Ranked

INSUFFICIENT_QUOTA = REASON_BY_STAGE[Stage.QUOTA]


@dataclass(slots=True)
class RoutingDecision:
    """Where a job goes (or why it goes nowhere), its hold amount and the evidence.

    ``estimated_cost`` is the hold in credit milli-units (0 when refused). ``skipped_by_kind``
    counts partitions of another accelerator, ecosystem or application: the index never looked at
    them and ``breakdown()`` does not list them. Treat as read-only: it is not ``frozen`` because it
    is built on the hot path, where a frozen dataclass's field-by-field ``object.__setattr__``
    costs more than the rest of the decision.
    """

    chosen_partition_id: int | None
    chosen_site_id: int | None
    chosen_site_code: str | None
    estimated_cost: int
    estimated_wait_s: int | None
    score: float | None
    refusal: str | None
    skipped_by_kind: int
    _view: HourView = field(repr=False, compare=False)
    # the candidates scored at decision time, as ranked (total, k, version, row), the choice among them
    # (the very tuples the search ranked, so the evidence costs the hot path next to nothing); and the
    # numbers of the candidates found out of quota
    _scored: tuple[Ranked, ...] = field(repr=False, compare=False)
    _short: tuple[int, ...] = field(repr=False, compare=False)
    _chosen: int = field(repr=False, compare=False)

    @property
    def routed(self) -> bool:
        return self.chosen_partition_id is not None

    @property
    def refusal_message(self) -> str:
        return REFUSAL_MESSAGES[self.refusal] if self.refusal else ""

    def explain(self, limit: int = 3) -> dict:
        """The decision and its best evaluated candidates, compact and JSON-ready.

        Floats are rounded to 4 decimals as ``round(x * 1e4) / 1e4`` (a third of the cost of
        ``round(x, 4)``; the two differ only where ``x * 1e4`` lands within an ulp of a half).

        ``candidates``: up to ``limit`` of the candidates scored at decision time (``chosen`` first,
        then ``scored`` ones, best first), with the same weighted parts as ``breakdown()``;
        ``excluded``: how many partitions each filter (4-7) excluded, by refusal code, as
        ``breakdown()`` lists them; ``skipped_by_kind``: partitions of another kind, never looked at.
        ``refusal`` and ``message`` are None and "" when the job was routed. Costs a few µs: the
        excluded partitions are counted once per shape, the load-independent parts rounded once per
        shape and hour, and only the candidates listed are rounded here.
        """
        view = self._view
        excluded = view.plan.excluded_counts.copy()
        if self._short:
            excluded[INSUFFICIENT_QUOTA] = len(self._short)
        scored = self._scored
        if len(scored) > 1:
            scored = sorted(scored)  # by total, then candidate number, which follows partition ids
        # Copies of per-candidate templates holding the load-independent values (copying a dict is
        # several times cheaper than building one), completed with the parts that depend on the load.
        known = view.explained
        chosen = self._chosen
        candidates = []
        for total, k, _version, row in scored[:limit]:
            candidate = (known.get(k) or _templates(view, k))[1].copy()
            candidate["status"] = CHOSEN if k == chosen else SCORED
            candidate["total"] = round(total * 1e4) / 1e4
            candidate["wait"] = round(row[1] * 1e4) / 1e4
            candidate["balance"] = round(row[2] * 1e4) / 1e4
            candidate["estimated_wait_s"] = round(row[0])
            candidates.append(candidate)
        if chosen < 0:
            return {
                "partition_id": None,
                "site_id": None,
                "site_code": None,
                "score": None,
                "estimated_wait_s": None,
                "estimated_cost": 0,
                "refusal": self.refusal,
                "message": REFUSAL_MESSAGES[self.refusal],
                "candidates": candidates,
                "excluded": excluded,
                "skipped_by_kind": self.skipped_by_kind,
            }
        explanation = (known.get(chosen) or _templates(view, chosen))[0].copy()
        # the chosen one comes first
        explanation["score"] = candidates[0]["total"] if candidates else round(self.score * 1e4) / 1e4
        explanation["estimated_wait_s"] = self.estimated_wait_s
        explanation["candidates"] = candidates
        explanation["excluded"] = excluded
        return explanation

    def breakdown(self) -> tuple[CandidateScore, ...]:
        """Every partition of a compatible kind: evaluated ones best first, then bounded, then excluded."""
        view = self._view
        plan = view.plan
        evaluated = {k: row for _total, k, _version, row in self._scored}
        out_of_quota = set(self._short)
        scored: list[CandidateScore] = []
        bounded: list[CandidateScore] = []
        short: list[CandidateScore] = []
        for k, hot in enumerate(plan.hot):
            part = plan.router_partitions[hot[0]]
            cost = view.costs[k]
            if k in out_of_quota:
                short.append(
                    CandidateScore(
                        part.partition_id,
                        part.site_id,
                        part.site_code,
                        EXCLUDED,
                        excluded_by=INSUFFICIENT_QUOTA,
                        detail=f"estimated cost {cost} exceeds the project's remaining quota at {part.site_code}",
                        estimated_cost=cost,
                    )
                )
                continue
            row = evaluated.get(k) or view.snapshot_rows[k]
            status = (CHOSEN if k == self._chosen else SCORED) if k in evaluated else BOUNDED
            wait_s, wait_part, balance_part = row
            entry = CandidateScore(
                part.partition_id,
                part.site_id,
                part.site_code,
                status,
                total=view.statics[k] + wait_part + balance_part,
                wait=wait_part,
                price=view.prices[k],
                locality=plan.localities[k],
                balance=balance_part,
                preference=plan.preferences[k],
                estimated_wait_s=round(wait_s),
                estimated_cost=cost,
            )
            (scored if k in evaluated else bounded).append(entry)
        scored.sort(key=lambda c: (c.total, c.partition_id))
        bounded.sort(key=lambda c: (c.total, c.partition_id))
        excluded = []
        for index, stage in plan.excluded:
            part = plan.router_partitions[index]
            excluded.append(
                CandidateScore(
                    part.partition_id,
                    part.site_id,
                    part.site_code,
                    EXCLUDED,
                    excluded_by=REASON_BY_STAGE[stage],
                    detail=exclusion_detail(plan.job, part),
                )
            )
        return (*scored, *bounded, *short, *excluded)


def _templates(view: HourView, k: int) -> tuple[dict, dict]:
    """``explain()``'s dicts for candidate ``k`` as the choice and as a candidate, with the values
    that do not depend on the load; kept on the view, and only ever copied."""
    plan = view.plan
    part = plan.router_partitions[plan.hot[k][0]]
    as_choice = {
        "partition_id": part.partition_id,
        "site_id": part.site_id,
        "site_code": part.site_code,
        "score": None,
        "estimated_wait_s": None,
        "estimated_cost": view.costs[k],
        "refusal": None,
        "message": "",
        "candidates": None,
        "excluded": None,
        "skipped_by_kind": plan.skipped_by_kind,
    }
    as_candidate = {
        "partition_id": part.partition_id,
        "site_code": part.site_code,
        "status": SCORED,
        "total": None,
        "wait": None,
        "price": round(view.prices[k] * 1e4) / 1e4,
        "locality": round(plan.localities[k] * 1e4) / 1e4,
        "balance": None,
        "preference": round(plan.preferences[k] * 1e4) / 1e4,
        "estimated_wait_s": None,
        "estimated_cost": view.costs[k],
    }
    view.explained[k] = templates = (as_choice, as_candidate)
    return templates
