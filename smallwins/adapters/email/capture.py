"""The ``email`` source's capture task: watch one IMAP folder and hand replies to the runtime.

imapclient is blocking, so every IMAP call runs in a worker thread (``anyio.to_thread``); the
event loop only waits. The server's IDLE is used where offered (re-issued every
``idle_seconds``, under the 29 minutes servers allow), plain polling otherwise.

Where it stands is kept in the store (``CursorStore``): the folder's UIDVALIDITY and the last
UID handed to the runtime. The cursor moves only after the runtime took a batch, so a restart
re-reads at most one batch and the core drops what it already has (events are keyed by
Message-ID). When UIDVALIDITY changes (a restored or rebuilt mailbox), old UIDs mean nothing:
the folder is read again from the start, and Message-IDs keep anything from counting twice.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import structlog
from imapclient.exceptions import IMAPClientError, LoginError

from smallwins.adapters.email.imap import Fetched, Mailbox
from smallwins.adapters.email.normalize import Outcome, ReplyRules, normalize_message
from smallwins.adapters.email.settings import MailboxSettings
from smallwins.core.config import ConfigError, resolve_secret
from smallwins.core.contract import EventSink, PluginContext
from smallwins.core.cursors import CursorStore
from smallwins.core.events import Event

log = structlog.get_logger(__name__)
T = TypeVar("T")

#: How long one wait for the server runs in a thread: cancellation lands between two waits.
IDLE_SLICE_SECONDS = 1.0


def rules_of(settings: MailboxSettings) -> ReplyRules:
    return ReplyRules.build(
        reply_address=settings.reply_address,
        issue_domains=settings.issue_domains,
        issue_message_ids=settings.issue_message_ids,
        require_authentication=settings.require_authentication,
        authserv_ids=settings.authserv_ids,
        link_codes=settings.link_codes,
    )


@dataclass
class Stats:
    """What this watcher did (logged per batch; tests and operators read it)."""

    messages: int = 0
    events: int = 0
    skipped: int = 0
    unreadable: int = 0
    fetched_bytes: int = 0
    rescans: int = 0
    connections: int = 0
    idle_wakeups: int = 0
    idle_renewals: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


class Watcher:
    """Reads new mail in the folder, turns it into events, and remembers where it stands."""

    def __init__(
        self,
        settings: MailboxSettings,
        *,
        username: str,
        password: str,
        cursors: CursorStore,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.settings = settings
        self.username = username
        self.password = password
        self.cursors = cursors
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.rules = rules_of(settings)
        self.stats = Stats()
        self.key = f"folder:{settings.folder}"
        #: Set once the first catch-up after connecting is done (tests wait for it).
        self.ready = anyio.Event()

    @classmethod
    def from_context(cls, context: PluginContext) -> Watcher:
        settings = context.settings
        assert isinstance(settings, MailboxSettings)
        where = f"plugins.{context.plugin}"
        if settings.host is None:
            raise ConfigError(f"setting '{where}.host' is missing: the IMAP server to watch")
        username = settings.username
        if username is None and settings.username_env:
            username = resolve_secret(settings.username_env, setting=f"{where}.username_env")
        password = resolve_secret(settings.password_env, setting=f"{where}.password_env")
        ca_file = context.path(settings.ca_file) if settings.ca_file else None
        return cls(
            settings,
            username=username or "",
            password=password,
            cursors=context.cursors,
            ssl_context=ssl.create_default_context(cafile=str(ca_file) if ca_file else None),
        )

    async def _thread(self, function: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(function, *args)

    # the loop -------------------------------------------------------------------------------------
    async def run(self, sink: EventSink) -> None:
        """Until cancelled: connect, catch up, wait for news; reconnect with backoff on network
        errors. A refused login stops the task (a wrong password will not fix itself)."""
        backoff = 1.0
        while True:
            mailbox = Mailbox(
                self.settings, username=self.username, password=self.password, ssl_context=self.ssl_context
            )
            try:
                selected = await self._thread(mailbox.connect)
                self.stats.connections += 1
                log.info(
                    "email.connected",
                    host=self.settings.host,
                    folder=self.settings.folder,
                    idle=mailbox.can_idle,
                    uidvalidity=selected["uidvalidity"],
                )
                backoff = 1.0
                while True:
                    await self.catch_up(mailbox, selected, sink)
                    self.ready.set()
                    await self.wait(mailbox)
            except LoginError as exc:
                raise ConfigError(
                    f"IMAP login to {self.settings.host} as {self.username!r} was refused: {exc}"
                ) from None
            except (IMAPClientError, OSError, ssl.SSLError, EOFError) as exc:
                log.warning("email.connection_lost", host=self.settings.host, error=str(exc), retry_in=backoff)
                await anyio.sleep(backoff)
                backoff = min(backoff * 2, self.settings.reconnect_max_seconds)
            finally:
                with anyio.CancelScope(shield=True):
                    await self._thread(mailbox.close)

    async def wait(self, mailbox: Mailbox) -> None:
        """Until the server reports news (IDLE) or ``poll_seconds`` pass (polling)."""
        if not mailbox.can_idle:
            await anyio.sleep(self.settings.poll_seconds)
            await self._thread(mailbox.noop)  # lets the server tell us about new messages
            return
        await self._thread(mailbox.idle_start)
        try:
            with anyio.move_on_after(self.settings.idle_seconds) as renew:
                while not await self._thread(mailbox.idle_check, IDLE_SLICE_SECONDS):
                    pass
            if renew.cancelled_caught:
                self.stats.idle_renewals += 1  # no news: IDLE is ended and issued again
            else:
                self.stats.idle_wakeups += 1
        finally:
            with anyio.CancelScope(shield=True):
                await self._thread(mailbox.idle_stop)

    # reading --------------------------------------------------------------------------------------
    async def catch_up(self, mailbox: Mailbox, selected: dict[str, int], sink: EventSink) -> None:
        """Everything that arrived since the cursor, in batches; the cursor follows each batch."""
        uidvalidity = selected["uidvalidity"]
        cursor = await self._thread(self.cursors.get, self.key)
        if cursor is None:
            last_uid = 0 if self.settings.start == "all" else max(selected["uidnext"] - 1, 0)
            await self._save(uidvalidity, last_uid)
        elif int(cursor.get("uidvalidity", -1)) != uidvalidity:
            log.warning(
                "email.uidvalidity_changed",
                folder=self.settings.folder,
                old=cursor.get("uidvalidity"),
                new=uidvalidity,
                action="reading the folder again; Message-IDs keep replies from counting twice",
            )
            self.stats.rescans += 1
            last_uid = 0
            await self._save(uidvalidity, last_uid)
        else:
            last_uid = int(cursor.get("last_uid", 0))
        uids = await self._thread(mailbox.uids_after, last_uid)
        for start in range(0, len(uids), self.settings.batch_size):
            batch = uids[start : start + self.settings.batch_size]
            await self._batch(mailbox, uidvalidity, batch, sink)

    async def _batch(self, mailbox: Mailbox, uidvalidity: int, uids: list[int], sink: EventSink) -> None:
        fetched = await self._thread(lambda: list(mailbox.fetch(uids)))
        events: dict[str, Event] = {}
        counted: list[int] = []
        for item in fetched:
            if isinstance(item, tuple):
                uid, error = item
                self.stats.unreadable += 1
                log.warning("email.unreadable_message", uid=uid, folder=self.settings.folder, error=repr(error))
                continue
            self.stats.messages += 1
            self.stats.fetched_bytes += item.fetched_bytes
            outcome = self._normalize(item)
            if outcome is None:
                continue
            if outcome.skipped:
                self.stats.skipped += 1
                reason = outcome.skipped.split(":")[0]
                self.stats.reasons[reason] = self.stats.reasons.get(reason, 0) + 1
                log.info("email.skipped", uid=item.uid, message_id=outcome.message_id, reason=outcome.skipped)
                continue
            counted.append(item.uid)
            for event in outcome.events:
                events.setdefault(event.key, event)
        self.stats.events += len(events)
        await sink(list(events.values()))
        await self._save(uidvalidity, max(uids))
        log.info(
            "email.batch",
            folder=self.settings.folder,
            uids=f"{min(uids)}-{max(uids)}",
            events=len(events),
            fetched_bytes=sum(i.fetched_bytes for i in fetched if isinstance(i, Fetched)),
        )
        if self.settings.flag_processed:
            await self._thread(mailbox.mark, uids, self.settings.flag_processed)
        if self.settings.move_counted_to and counted:
            await self._thread(mailbox.move, counted, self.settings.move_counted_to)

    def _normalize(self, item: Fetched) -> Outcome | None:
        try:
            return normalize_message(item.message, item.text, rules=self.rules, received_at=item.received_at)
        except Exception as exc:  # malformed beyond what the reader tolerates: log it, go on
            self.stats.unreadable += 1
            log.warning("email.malformed_message", uid=item.uid, folder=self.settings.folder, error=repr(exc))
            return None

    async def _save(self, uidvalidity: int, last_uid: int) -> None:
        value = {"uidvalidity": uidvalidity, "last_uid": last_uid}
        await self._thread(self.cursors.set, self.key, value)


async def capture(context: PluginContext, sink: EventSink) -> None:
    """The source's capture task (``smallwins run``)."""
    await Watcher.from_context(context).run(sink)
