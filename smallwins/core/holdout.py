"""Who is held out of seeing an achievement: a stable draw from the member id and a salt.

An operator measures whether an achievement changes behaviour by not showing it to a random
share of members (``holdout = 0.1`` on the achievement, ``[experiment] salt`` in the catalogue).
The achievement is still computed for them (the report needs to know who earned it); only the
surfaces hide it. The draw is ``sha256(salt:achievement:member) < share``, so it is stable across
processes and restarts, independent between achievements, and redrawn by changing the salt.
Kept in the core because every surface (snapshots, the outbox, the newsletter) must agree.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from smallwins.core.rules import Catalogue

#: 2**64: the first 8 bytes of the digest, read as a fraction of this, are the member's draw.
_SCALE = float(1 << 64)


def draw(salt: str, achievement_id: str, member_id: int) -> float:
    """A uniform number in [0, 1) fixed for (salt, achievement, member)."""
    digest = hashlib.sha256(f"{salt}:{achievement_id}:{member_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def held_out(catalogue: Catalogue, achievement_id: str, member_id: int) -> bool:
    """Whether ``member_id`` must not be shown ``achievement_id`` (False for unknown achievements)."""
    achievement = catalogue.achievements.get(achievement_id)
    if achievement is None or achievement.holdout <= 0:
        return False
    return draw(catalogue.experiment.salt, achievement_id, member_id) < achievement.holdout


def hidden_from(catalogue: Catalogue, member_id: int) -> frozenset[str]:
    """The achievements ``member_id`` is held out of."""
    return frozenset(a for a in catalogue.achievements if held_out(catalogue, a, member_id))
