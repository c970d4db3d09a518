"""The installed command: ``smallwins run`` turns new comments into awards; ``smallwins youtube
backfill`` catches up with a progress bar; ``smallwins youtube status`` reports the quota."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from conftest import CHANNEL, KEY_ENV, plugins_toml
from fakeyoutube import API_KEY, FakeComment, FakeYouTube
from typer.testing import CliRunner

from smallwins.cli import app
from smallwins.core.store import open_store
from tests.rules_helpers import held

EXE = Path(sys.executable).parent / "smallwins"
ANN, BOB = "UCann0000000000000000000", "UCbob0000000000000000000"


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMALLWINS_")}
    env[KEY_ENV] = API_KEY
    env["COLUMNS"] = "160"
    return env


def setup(tmp_path: Path, youtube: FakeYouTube, settings: dict[str, Any], **extra: Any) -> Path:
    now = datetime.now(UTC)
    youtube.add_video(CHANNEL, "vidOLD00001", now - timedelta(days=40))
    youtube.add_video(CHANNEL, "vidNEW00001", now - timedelta(days=2))
    youtube.comment("vidNEW00001", FakeComment("Ugw-ann1", ANN, "@ann", "first!", now - timedelta(days=1)))
    youtube.comment("vidOLD00001", FakeComment("Ugw-bob1", BOB, "@bob", "old but gold", now - timedelta(days=30)))
    text = plugins_toml(settings | extra).replace(
        "[plugins.youtube]", '[smallwins.store]\nurl = "sqlite:///yt.db"\n\n[plugins.youtube]'
    )
    (tmp_path / "plugins.toml").write_text(text)
    return tmp_path / "yt.db"


def smallwins(*args: str, cwd: Path, database_url: str | None = None) -> Result:
    """The command in this process (a subprocess start costs seconds), as an operator types it."""
    options = ["-c", str(cwd / "plugins.toml")] + (["--db", database_url] if database_url else [])
    return CliRunner().invoke(app, [*args, *options], env={KEY_ENV: API_KEY}, terminal_width=200)


def test_run_turns_new_comments_into_awards(
    tmp_path: Path, youtube: FakeYouTube, youtube_settings: dict[str, Any]
) -> None:
    database = setup(tmp_path, youtube, youtube_settings, recent_poll_seconds=0.2, uploads_poll_seconds=0.2)
    process = subprocess.Popen(
        [str(EXE), "run", "-c", "plugins.toml"],
        cwd=tmp_path,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    store = None
    try:
        deadline = time.monotonic() + 30
        while not database.exists() or not youtube.asked("commentThreads"):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "smallwins run did not poll the YouTube server"
            time.sleep(0.1)
        store = open_store(f"sqlite:///{database}")

        def awarded(ref: str) -> dict[str, str | None]:
            try:
                return held(store, ref)
            except Exception:  # the member does not exist yet
                return {}

        while "first-words" not in awarded(f"youtube:{ANN}"):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "Ann's comment did not become an award"
            time.sleep(0.1)
        # a comment made while it runs, answered by the creator
        now = datetime.now(UTC)
        youtube.comment("vidNEW00001", FakeComment("Ugw-bob2", BOB, "@bob", "new here", now - timedelta(seconds=5)))
        youtube.comment(
            "vidNEW00001", FakeComment("Ugw-bob2.r1", CHANNEL, "@creator", "welcome!", now), reply_to="Ugw-bob2"
        )
        while "creator-pick" not in awarded(f"youtube:{BOB}"):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "Bob's comment and the creator's reply did not become awards"
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
        if store is not None:
            store.close()
    assert process.returncode == 0, err
    assert "stopped" in out
    assert "youtube.polled" in err and "units_left=" in err
    reads = [r.params["videoId"] for r in youtube.asked("commentThreads")]
    assert reads.count("vidOLD00001") == 1 < reads.count("vidNEW00001")  # the recent video is read more often


def test_backfill_catches_up_and_status_reports_the_quota(
    tmp_path: Path, youtube: FakeYouTube, youtube_settings: dict[str, Any], database_url: str
) -> None:
    setup(tmp_path, youtube, youtube_settings)
    result = smallwins("youtube", "backfill", cwd=tmp_path, database_url=database_url)
    assert result.exit_code == 0, result.stderr
    assert "reading YouTube comments" in result.stderr and "2/2" in result.stderr  # the progress bar
    assert "2 videos read" in result.stdout and "4 of 9000 units used" in result.stdout.replace("\n", " ")
    assert [r.method for r in youtube.asked()] == ["channels", "playlistItems", "commentThreads", "commentThreads"]
    status = smallwins("youtube", "status", "--json", cwd=tmp_path, database_url=database_url)
    assert status.exit_code == 0, status.stderr
    document = json.loads(status.stdout)
    assert document["quota"]["used"] == len(youtube.asked()) == 4
    assert document["quota"]["left"] == youtube_settings.get("daily_quota", 9000) - 4
    assert [(v["video"], v["comments"]) for v in document["videos"]] == [("vidNEW00001", 1), ("vidOLD00001", 1)]
    table = smallwins("youtube", "status", cwd=tmp_path, database_url=database_url)
    assert "4 of 9000 units used, 8996 left" in table.stdout.replace("\n", " ")
    assert "Videos followed" in table.stdout and "vidNEW00001" in table.stdout


def test_backfill_stopped_by_the_quota_says_when_to_run_again(
    tmp_path: Path, youtube: FakeYouTube, youtube_settings: dict[str, Any]
) -> None:
    setup(tmp_path, youtube, youtube_settings)
    youtube.quota_after = 3
    result = smallwins("youtube", "backfill", cwd=tmp_path)
    assert result.exit_code == 1
    assert "stopped: YouTube answered commentThreads.list with quotaExceeded" in result.stderr.replace("\n", " ")
    status = smallwins("youtube", "status", cwd=tmp_path)
    assert "paused until" in status.stdout and "quotaExceeded" in status.stdout.replace("\n", " ")
    assert "(read" in status.stdout and "under way)" in status.stdout  # the old video's read resumes first


@pytest.mark.parametrize("bad", ['channels = ["@mychannel"]', "daily_quota = 0", "catch_up_videos = 99"])
def test_bad_settings_are_refused_naming_the_key(tmp_path: Path, bad: str) -> None:
    (tmp_path / "plugins.toml").write_text(f"[plugins.youtube]\nenabled = true\n{bad}\n")
    result = smallwins("youtube", "status", cwd=tmp_path)
    assert result.exit_code == 2
    assert "plugins.youtube" in result.stderr
