"""`smallwins run` starts the web source's capture task (the server) when [plugins.web] is on,
and Ctrl-C stops it cleanly; a click through it is credited like any other event."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from harness import BROWSER_UA, CATALOGUE, T0, free_socket

from smallwins.adapters.web.links import create_link, web_account_of
from smallwins.adapters.web.tokens import MemberSigner, signing_key
from smallwins.core.config import load_catalogue
from smallwins.core.engine import Engine
from smallwins.core.events import Event
from smallwins.core.plugins import PluginHost
from smallwins.core.rules import Catalogue
from smallwins.core.store import open_store
from smallwins.core.views import member_snapshot


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_run_serves_the_web_source_until_interrupted(tmp_path: Path, stop_signal: signal.Signals) -> None:
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()  # the server binds it again; nothing else on this machine takes it in between
    (tmp_path / "plugins.toml").write_text(
        f'[smallwins]\ncatalogue = "{CATALOGUE}"\n[smallwins.store]\nurl = "sqlite:///run.db"\n'
        f"[plugins.web]\nenabled = true\nport = {port}\n"
    )
    store = open_store(f"sqlite:///{tmp_path / 'run.db'}")
    engine = Engine(store, catalogue())  # a member who exists before the server starts
    list(engine.ingest_many([Event(id="1", source="discord", type="message.posted", subject="d1", time=T0)]))
    link = create_link(
        store, url="https://club.example/kit.zip", campaign="c", event_type="download.completed", credit_period="day"
    )
    token = MemberSigner(signing_key(store, None), token_max_age=3600, cookie_max_age=3600).token(
        web_account_of(store, 1)
    )

    exe = Path(sys.executable).parent / "smallwins"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMALLWINS_")}
    process = subprocess.Popen(
        [str(exe), "run", "-c", "plugins.toml"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.communicate()
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "smallwins run did not start the web server"
                time.sleep(0.1)
        response = httpx.get(f"{base}/r/{link.code}", params={"m": token}, headers={"User-Agent": BROWSER_UA})
        assert response.status_code == 302
    finally:
        process.send_signal(stop_signal)  # SIGTERM: as systemd or docker stop would
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "stopped" in out
    assert "Traceback" not in err and "unhandled exception" not in err, err
    assert "web.listening" in err or "runtime.source_started" in err
    with store.sessions() as session:
        awards = [a["id"] for a in member_snapshot(session, catalogue(), 1).awards]
    assert "toolkit" in awards
    store.close()


def catalogue() -> Catalogue:
    return load_catalogue(CATALOGUE, PluginHost().rule_types())


@pytest.mark.parametrize("command", [["run"], ["serve"]])
def test_a_busy_port_is_one_line_naming_it(tmp_path: Path, command: list[str]) -> None:
    """Another program on the web port: `run` and `serve` say so in one line and exit 2, as for
    any setting that cannot work (uvicorn exited the process from inside the task group: a page
    of traceback, exit code 3)."""
    holder = free_socket()
    holder.listen()
    port = holder.getsockname()[1]
    (tmp_path / "plugins.toml").write_text(
        f'[smallwins]\ncatalogue = "{CATALOGUE}"\n[smallwins.store]\nurl = "sqlite:///run.db"\n'
        f"[plugins.web]\nenabled = true\nport = {port}\n"
    )
    exe = Path(sys.executable).parent / "smallwins"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMALLWINS_")}
    try:
        done = subprocess.run(
            [str(exe), *command, "-c", "plugins.toml"], cwd=tmp_path, env=env, capture_output=True, text=True,
            timeout=60,
        )
    finally:
        holder.close()
    said = " ".join(done.stderr.split())
    assert done.returncode == 2, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in said and "Address already in use" in said, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
