"""The job router: choose a site and partition for a job, and record why.

A pure core: plain Python over dataclasses, no Django. The caller (a service) builds
``PartitionView`` snapshots and the project's remaining brokered quota per site, injects the
clock (``now``, a timezone-aware datetime), and persists the ``RoutingDecision`` it gets back
(the chosen partition, the hold amount ``estimated_cost`` and the compact ``explain()``, a few µs;
``breakdown()`` lists every compatible partition as objects, for investigating one decision).

Filters, in order. A partition is excluded by the first one it fails; when no candidate is left
the job is refused with the reason of the *latest* filter that eliminated a partition, since that
one is the closest the job came to running ("the site that could run it is offline" says more
than "most partitions have the wrong cards"):

1. ``unknown_accelerator_model`` – a GPU job on a CPU partition, a CPU job on a GPU partition,
   or a card model/family the job does not accept;
2. ``no_compatible_ecosystem`` – the partition's software ecosystem is not one the job speaks;
3. ``application_unavailable`` – the partition does not offer the job's application;
4. ``walltime_over_limit`` – the job asks for more time than the partition allows;
5. ``no_partition_fits`` – a node is too small (cores, memory or cards per node) or the
   partition has fewer nodes than the job needs;
6. ``no_site_online`` – the site is draining or offline (``degraded`` sites stay candidates,
   with a wait penalty);
7. ``insufficient_quota`` – the project's remaining quota at the site is below the estimated cost.

Filters 1-3 are answered by an index keyed by (family, model, ecosystem) and application, so a
decision never scans the partitions of other kinds; filters 1-6 depend only on the job's shape
(identical ``JobSpec``s) and are cached per shape, with each candidate's score on the capacity
snapshot, per hour of the day. A decision then walks the candidates best-first and stops at the
first one whose site has the quota (single decisions), or at the first whose score, re-computed
only if a job of the batch went to its partition since, is still the lowest (batches: see
``Router``).

Score (lower is better). Every part is in [0, 1] before weighting; ``CandidateScore`` holds the
*weighted* parts, which add up to ``total``::

    total = w_wait·W + w_price·P + w_locality·L + w_balance·B + w_preference·R

    W = t / (t + wait_half_s)          t = estimated wait in seconds (below)
    P = min(1, cost / cheapest - 1)    cost at the current peak/valley price, cheapest among the
                                       job's candidates that pass filters 1-6 (0 = cheapest,
                                       1 = twice the cheapest or more)
    L = 0 if the job has no dataset or the site hosts it, else 1
    B = min(1, (used + requested) / capacity)  of the partition's dominant resource (cards on a
                                       GPU partition, cores on a CPU one): spreads load
    R = 0 without preferences; rank / len(preferred) / 2 for the rank-th preferred site
        (so in [0, 0.5)); 1 for a site not preferred

Estimated wait ``t`` (dominant resource; ``cap`` = nodes × per-node amount, ``free`` and
``used = cap - free`` from the snapshot, ``req`` = the job's total cards or cores)::

    t = queued_seconds / cap                                         # drain the pending backlog
      + max((req - free) / used, (nodes - free_nodes) / busy_nodes)  # shortfall, as the fraction
        × mean_remaining_s                                           #  of running work to finish
    degraded site: t = 2·t + 600

Ties are broken by partition id, so a decision is a function of its inputs.

``route_batch`` routes jobs in order and, as it assigns each one, takes the estimated cost off the
site's quota and the job's cards/cores off the partition's free capacity (or adds its work to the
partition's queue when it does not fit now), so a batch never over-commits a site's quota and
later jobs see the load earlier ones created. The caller persists the holds aggregated per
project and site.

The package, by responsibility: ``model`` (inputs, weights, refusal codes, explanation entries),
``pricing`` (peak/valley multipliers, ``estimate_cost``), ``filters`` (kind filters, exclusion
details), ``plans`` (per-shape plans and batch state, internal), ``decision`` (``RoutingDecision``,
``breakdown()`` and ``explain()``) and ``router`` (the index and the searches). Import from here.
"""

from federation.routing.decision import RoutingDecision
from federation.routing.model import (
    BOUNDED,
    CHINA_UTC_OFFSET_S,
    CHOSEN,
    DEFAULT_WEIGHTS,
    ECOSYSTEMS,
    EXCLUDED,
    NO_PARTITIONS,
    PERMILLE,
    REASON_BY_STAGE,
    REFUSAL_MESSAGES,
    ROUTABLE_STATES,
    SCORED,
    SECONDS_PER_HOUR,
    SITE_STATES,
    CandidateScore,
    JobSpec,
    PartitionView,
    ScoringWeights,
    Stage,
)
from federation.routing.pricing import estimate_cost, price_multiplier_permille
from federation.routing.router import Router, route, route_batch

__all__ = [
    "BOUNDED",
    "CHINA_UTC_OFFSET_S",
    "CHOSEN",
    "DEFAULT_WEIGHTS",
    "ECOSYSTEMS",
    "EXCLUDED",
    "NO_PARTITIONS",
    "PERMILLE",
    "REASON_BY_STAGE",
    "REFUSAL_MESSAGES",
    "ROUTABLE_STATES",
    "SCORED",
    "SECONDS_PER_HOUR",
    "SITE_STATES",
    "CandidateScore",
    "JobSpec",
    "PartitionView",
    "Router",
    "RoutingDecision",
    "ScoringWeights",
    "Stage",
    "estimate_cost",
    "price_multiplier_permille",
    "route",
    "route_batch",
]
