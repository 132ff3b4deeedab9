"""The one severity order of statuses, shared by the roll-up and policy (``audit.rollup``) and by
``diff`` (a status that got worse is a regression)."""

from __future__ import annotations

from reports._schema import Status

# Least to most severe; statuses in one tuple share a rank (a policy's `max_status` compares ranks),
# and within a rank the later one wins a roll-up.
# - manual ranks with pass: a risk left to a person's review does not fail an automated gate
#   (the review checklist carries it).
# - inconclusive ranks with warn (a policy's `inconclusive:` setting can make it block) and wins
#   the tie: it is the more cautious reading, since it cannot rule out a fail.
# - not_evaluated sits above warn and below fail: a risk that could not be measured must not pass
#   `max_status: warn`, yet it is no evidence of failure. incomplete (areas and the audit only)
#   ranks with it: it replaces pass, warn and inconclusive, and fail and error beat it.
STATUS_ORDER: tuple[tuple[Status, ...], ...] = (
    (Status.manual, Status.passed),
    (Status.warn, Status.inconclusive),
    (Status.not_evaluated, Status.incomplete),
    (Status.fail,),
    (Status.error,),
)
_SEVERITY = {s: rank for rank, tied in enumerate(STATUS_ORDER) for s in tied}


def status_severity(status: Status) -> int:
    """Rank of ``status`` in the one severity order (higher is worse)."""
    return _SEVERITY[status]
