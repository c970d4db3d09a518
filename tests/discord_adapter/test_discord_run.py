"""The installed ``smallwins run`` with the Discord plugin enabled in plugins.toml: the bot connects,
a message becomes an award, the award becomes a role. The fake Discord stands in for discord.com."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from discord_harness import FIRST_WORDS_ROLE, TOKEN_ENV, plugins_toml
from fake_discord import GUILD_ID, ThreadedFake

EXE = Path(sys.executable).with_name("smallwins")


def wait_for(check, what: str, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_smallwins_run_connects_the_bot_and_gives_roles(tmp_path: Path) -> None:
    server = ThreadedFake()
    fake = server.fake
    fake.add_account(4001, "alice")
    fake.add_role(FIRST_WORDS_ROLE, "First Words")
    shared = {"api_url": fake.api_base, "gateway_url": fake.ws_url}
    config = tmp_path / "plugins.toml"
    config.write_text(
        plugins_toml({"cooldown_seconds": 0}, {"achievement_roles": {"first-words": str(FIRST_WORDS_ROLE)}}).replace(
            f'guild_id = "{GUILD_ID}"',
            f'guild_id = "{GUILD_ID}"\n' + "\n".join(f'{k} = "{v}"' for k, v in shared.items()),
        )
    )
    env = {**os.environ, TOKEN_ENV: "fake-bot-token"}
    process = subprocess.Popen(
        [str(EXE), "run", "-c", str(config), "--db", f"sqlite:///{tmp_path / 'run.db'}", "--outbox-interval", "0.3"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(fake.ready.is_set, "the bot to identify on the gateway")
        wait_for(lambda: bool(fake.commands), "slash commands to be synced")
        message = fake.message(4001, "hello from the installed command", at=datetime.now(UTC))
        asyncio.run_coroutine_threadsafe(fake.dispatch("MESSAGE_CREATE", message), server.loop).result(10)
        wait_for(lambda: FIRST_WORDS_ROLE in fake.accounts[4001].roles, "the role for First Words")
        assert ("PUT", f"/guilds/{GUILD_ID}/members/4001/roles/{FIRST_WORDS_ROLE}", None) in fake.requests
    finally:
        process.send_signal(signal.SIGTERM)  # as systemd or docker stop would
        output = process.communicate(timeout=30)[0]
        server.stop()
    assert "runtime.source_started" in output and "discord" in output, output
    assert process.returncode == 0 and "stopped" in output, "SIGTERM stops the runtime cleanly"


def test_smallwins_run_without_the_token_says_which_variable(tmp_path: Path) -> None:
    config = tmp_path / "plugins.toml"
    config.write_text(plugins_toml({}, {}))
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    result = subprocess.run(
        [str(EXE), "run", "-c", str(config), "--db", f"sqlite:///{tmp_path / 'run.db'}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert TOKEN_ENV in result.stderr and "not set" in result.stderr
