"""The public plugin contract: every pluggy hook smallwins calls.

A plugin is a module (or object) with functions marked ``@hookimpl`` and registered under the
``smallwins`` entry-point group, e.g. in its ``pyproject.toml``::

    [project.entry-points.smallwins]
    my_plugin = "my_package.smallwins_plugin"

Built-in sources, presenters and rule types use this exact path, so they prove the contract.
Each hook returns descriptors; the core decides when to call what those descriptors hold.
"""

from __future__ import annotations

import pluggy

from smallwins.core.contract import PresenterSpec, SourceSpec
from smallwins.core.rules import RuleType

PROJECT = "smallwins"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def smallwins_register_sources() -> list[SourceSpec]:
    """Sources (adapters) this plugin provides.

    A source turns a platform payload into zero or more normalized events (``normalize``, a pure
    function testable from recorded payloads) and may run a long-lived ``capture`` task (gateway,
    poller, IMAP IDLE, HTTP routes) that hands events to the runtime.
    """
    raise NotImplementedError  # a specification: plugins implement it


@hookspec
def smallwins_register_presenters() -> list[PresenterSpec]:
    """Presenters this plugin provides.

    A presenter renders a member's state natively (a Discord role, widget JSON, a newsletter
    block) and applies outbox changes idempotently: applying the same state twice changes nothing.
    """
    raise NotImplementedError  # a specification: plugins implement it


@hookspec
def smallwins_register_rule_types() -> list[RuleType]:
    """Rule types this plugin adds, so the catalogue can use new kinds of achievement."""
    raise NotImplementedError  # a specification: plugins implement it
