"""The ingest pipeline, one module per stage, in the order a batch flows through them.

1. :mod:`~smallwins.core.pipeline.resolve`: validate is done by :class:`~smallwins.core.events.Event`;
   resolve identities (new members inserted together), lock the batch's members, load their
   rule states (:mod:`smallwins.core.rule_states`) and awards in a few queries.
2. :mod:`~smallwins.core.pipeline.store_events`: dedup and store with one multi-row
   ``INSERT ... ON CONFLICT DO NOTHING RETURNING``.
3. :mod:`~smallwins.core.pipeline.route`: find what approvals name, and approvals waiting for
   the batch's contributions, one query each.
4. :mod:`~smallwins.core.pipeline.evaluate`: apply rules in memory; award, revoke, change tiers.
5. :mod:`~smallwins.core.pipeline.settle`: replay rule states an earlier event made stale,
   retractions, reconciling concurrent writers.
6. Commit: rule states, audit entries, outbox items and period points are written in bulk by
   before-commit hooks (:mod:`smallwins.core.rule_states`, :mod:`smallwins.core.awards`,
   :mod:`smallwins.core.leaderboards`).

:mod:`~smallwins.core.pipeline.ingest` drives a batch through these stages;
:mod:`~smallwins.core.pipeline.recompute` and :mod:`~smallwins.core.pipeline.linking` hold the
operations that recompute a member from history (merge, unlink, time zone, backfill).
:class:`smallwins.core.engine.Engine` is the facade over all of them.
"""
