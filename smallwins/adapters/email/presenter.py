"""The ``newsletter`` presenter: keeps each email reader's own progress block current on disk.

On every outbox change of a member with an email identity it renders their progress
(``recipients/<member id>.html`` and ``.txt`` under ``output_dir``), written only when it
changed, so applying the same state twice changes nothing; a merged-away member's files go.
The issue block itself is made on demand by ``smallwins newsletter --issue``.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import structlog

from smallwins.adapters.email.newsletter import EMAIL, recipient
from smallwins.adapters.email.render import Renderer
from smallwins.adapters.email.settings import NewsletterSettings
from smallwins.core.app import App
from smallwins.core.contract import MemberSnapshot, OutboxChange, PluginContext, Presenter
from smallwins.presenters.web_widget import write_if_changed

log = structlog.get_logger(__name__)


class NewsletterPresenter:
    def __init__(self, app: App, root: Path, renderer: Renderer) -> None:
        self.app = app
        self.root = root
        self.renderer = renderer

    def paths(self, member_id: int) -> tuple[Path, Path]:
        base = self.root / "recipients" / str(member_id)
        return base.with_suffix(".html"), base.with_suffix(".txt")

    async def apply(self, change: OutboxChange, member: MemberSnapshot) -> None:
        await anyio.to_thread.run_sync(self._apply, change, member)

    def _apply(self, change: OutboxChange, member: MemberSnapshot) -> None:
        html_path, text_path = self.paths(member.member_id)
        addresses = member.identities.get(EMAIL) or []
        if member.merged_into is not None or not addresses:
            html_path.unlink(missing_ok=True)
            text_path.unlink(missing_ok=True)
            return
        now = self.app.engine.clock()
        with self.app.store.sessions() as session:
            reader = recipient(self.app, session, member.member_id, min(addresses), now, now)
        rendered = self.renderer.recipient(None, reader)
        changed = write_if_changed(html_path, rendered.html) | write_if_changed(text_path, rendered.text)
        if changed:
            log.debug("newsletter.recipient_written", member=member.member_id, change=change.id)


def create(context: PluginContext) -> Presenter:
    settings = context.settings
    assert isinstance(settings, NewsletterSettings)
    template_dir = context.path(settings.template_dir) if settings.template_dir else None
    return NewsletterPresenter(context.app, context.path(settings.output_dir), Renderer(template_dir))
