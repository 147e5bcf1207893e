"""Counting and logging of rejected input: every rejection counted, logged once per peer and
reason, and repeats summarised, so a flood of garbage cannot flood the log."""

from __future__ import annotations

import logging
from collections import Counter

log = logging.getLogger("appliance.ingestor")


class RejectionLog:
    def __init__(self) -> None:
        self.total = 0
        self.by_reason: Counter[str] = Counter()
        self._seen: set[tuple[str, str]] = set()
        self._repeats: Counter[str] = Counter()

    def reject(self, peer: str, kind: str, reason: str) -> None:
        """Count one rejected frame; log it unless this host already had one of this kind
        since the last summary."""
        self.total += 1
        self.by_reason[kind] += 1
        host = peer.rsplit(":", 1)[0]
        if (host, kind) in self._seen:
            self._repeats[host] += 1
            return
        if len(self._seen) < 10000:
            self._seen.add((host, kind))
        log.warning("rejected a frame from %s: %s", peer, reason)

    def flush_summary(self) -> None:
        """Log (and forget) the repeats since the last summary."""
        if self._repeats:
            log.warning("rejected %d more frames: %s", sum(self._repeats.values()),
                        ", ".join(f"{host} ×{n}" for host, n in self._repeats.most_common(10)))
            self._repeats.clear()
            self._seen.clear()
