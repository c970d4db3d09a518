"""The web source's capture task: the ASGI app served by uvicorn inside the anyio runtime.

``smallwins run`` starts it like any source's capture task; ``smallwins serve`` runs it alone.
Clicks, forms and webhooks are ingested through the engine (in a worker thread) rather than the
runtime's sink, because a webhook is answered with each event's outcome (stored, duplicate,
rejected) and a click's redirect records whether it was credited.
"""

from __future__ import annotations

import os
import socket

import structlog
import uvicorn

from smallwins.adapters.web.app import Web, build_asgi, engine_ingest
from smallwins.adapters.web.settings import WebSettings
from smallwins.adapters.web.tokens import MemberSigner, signing_key
from smallwins.core.config import ConfigError, resolve_secret
from smallwins.core.contract import EventSink, PluginContext

log = structlog.get_logger(__name__)


def build_web(context: PluginContext) -> Web:
    """Everything the handlers need, from the component's context; fails early on a missing secret."""
    settings = context.settings
    assert isinstance(settings, WebSettings)
    app = context.app
    configured = os.environ.get(settings.secret_env)
    if not configured:
        log.info("web.signing_key_from_store", hint=f"set {settings.secret_env} to choose the key yourself")
    signer = MemberSigner(
        signing_key(app.store, configured),
        token_max_age=settings.member_token_days * 86400,
        cookie_max_age=settings.cookie_days * 86400,
    )
    hook_secrets = {
        name: resolve_secret(hook.secret_env, setting=f"plugins.{context.plugin}.hooks.{name}.secret_env")
        for name, hook in settings.hooks.items()
    }
    return Web(
        app=app,
        settings=settings,
        signer=signer,
        ingest=engine_ingest(app),
        hook_secrets=hook_secrets,
        admin_token=os.environ.get(settings.admin_token_env) or None,
    )


def listen_on(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``, or a :class:`ConfigError` saying why there is none."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise ConfigError(
            f"the web server cannot listen on {host}:{port}: {exc.strerror or exc}"
            " (another program on that port? set [plugins.web] port, or give serve --port)"
        ) from None


class WebServer:
    """uvicorn serving the web app; ``stop()`` asks it to finish (tests, embedding)."""

    def __init__(self, web: Web, *, host: str, port: int) -> None:
        config = uvicorn.Config(
            build_asgi(web),
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
            server_header=False,
            proxy_headers=False,
        )
        self.server = uvicorn.Server(config)

    @property
    def started(self) -> bool:
        return bool(self.server.started)

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        # Bound here, not by uvicorn: it exits the process on a busy port (a SystemExit that
        # came out of the task group as a page of traceback); this says why in one line.
        config = self.server.config
        sockets = sockets or [listen_on(config.host, config.port)]
        try:
            await self.server.serve(sockets=sockets)
        finally:
            self.server.should_exit = True

    def stop(self) -> None:
        self.server.should_exit = True


async def capture(context: PluginContext, sink: EventSink) -> None:
    """Serve until cancelled or interrupted (see the module docstring for why ``sink`` is unused)."""
    web = build_web(context)
    settings = web.settings
    log.info("web.listening", url=settings.base_url(), host=settings.host, port=settings.port)
    await WebServer(web, host=settings.host, port=settings.port).serve()
