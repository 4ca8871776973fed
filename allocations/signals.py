"""Hooks other apps connect to (allocations imports none of them: see the design's dependency rule).

``allocation_awarded`` is sent inside the award's transaction, after the ledger credited the award,
with ``actor``, ``allocation``, ``request`` (the approved request) and ``amounts`` ({class code: whole
display units} just awarded). The federation connects its quota broker to it (``FederationConfig.ready``),
so the shares at the centres are written atomically with the award: a failing broker fails the award.
"""

from django.dispatch import Signal

allocation_awarded = Signal()
