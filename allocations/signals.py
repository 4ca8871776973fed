"""Hooks other apps connect to (allocations imports none of them: see the design's dependency rule).

``allocation_awarded`` is sent inside the award's transaction, after the ledger credited the award,
with ``actor``, ``allocation``, ``request`` (the approved request) and ``amounts`` ({class code: whole
display units} just awarded). The federation connects its quota broker to it (``FederationConfig.ready``),
so the shares at the centres are written atomically with the award: a failing broker fails the award.
"""

from django.dispatch import Signal

allocation_awarded = Signal()

# Sent by the ledger inside its transaction when what an allocation holds or was charged at a centre moves
# (holds placed with a ``site_ref``, and their settlement): ``allocation_id``, ``resource_class_id``,
# ``site_ref``, ``held`` and ``charged`` (signed deltas, smallest units). The federation keeps its site
# quotas' ``held``/``charged`` counters with it, so the router never sums a project's job history.
quota_usage = Signal()
