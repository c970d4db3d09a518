"""Which ingest worker owns an account: ``crc32(source:subject) % count``.

Shared by the command that splits a file between workers (:mod:`smallwins.core.workers`) and by
the engine of each worker, which hands work for other partitions' members to their owners
(:mod:`smallwins.core.pipeline.handoff`).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass


def account_partition(source: str, subject: str, count: int) -> int:
    """The partition of an account among ``count``: stable across processes and runs."""
    return zlib.crc32(f"{source}:{subject}".encode()) % count


@dataclass(frozen=True)
class Partition:
    """One worker's share of the accounts: those whose :func:`account_partition` is ``index``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"partition {self.index} of {self.count}: the index must be in 0..{self.count - 1}")

    def owns(self, source: str, subject: str) -> bool:
        return account_partition(source, subject, self.count) == self.index
