"""The installed `smallwins` command, run as a user would, against a SQLite file."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GOOD = {
    "source": "discord",
    "type": "message.posted",
    "subject": "d1",
    "time": "2026-03-02T12:00:00Z",
    "data": {"display_name": "Ada"},
}


def run(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "smallwins"
    assert exe.exists(), "the smallwins console script must be installed next to this Python"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMALLWINS_")}
    env["COLUMNS"] = "160"
    result = subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"smallwins {' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copy(REPO / "plugins.toml", tmp_path)
    shutil.copy(REPO / "achievements.toml", tmp_path)
    return tmp_path


def test_ingest_reports_bad_lines_keeps_the_rest_and_is_idempotent(workdir: Path) -> None:
    lines = [json.dumps({**GOOD, "id": f"m{i}"}) for i in range(5)]
    lines.insert(2, '{"id": "broken", ')
    lines.insert(4, json.dumps({**GOOD, "id": "naive", "time": "2026-03-02T12:00:00"}))
    (workdir / "events.jsonl").write_text("\n".join(lines) + "\n")

    first = run("ingest", "events.jsonl", cwd=workdir, check=False)
    assert first.returncode == 1
    assert "events.jsonl:3:" in first.stderr and "not valid JSON" in first.stderr
    assert "events.jsonl:5:" in first.stderr and "'time'" in first.stderr
    assert "5 stored, 0 already known, 2 rejected, 2 achievements awarded" in first.stdout

    again = run("ingest", "events.jsonl", cwd=workdir, check=False)
    assert "0 stored, 5 already known, 2 rejected, 0 achievements awarded" in again.stdout

    card = run("member", "discord:d1", cwd=workdir).stdout
    assert "Ada" in card and "Regular" in card and "5 of 25 contributions" in card
    widget = json.loads((workdir / "out/widgets/members/1.json").read_text())
    assert widget["points"] == 5 * 2 + 10 + 25


def test_moderation_leaderboard_links_and_plugins(workdir: Path) -> None:
    events = [
        dict(GOOD, id="a"),
        dict(GOOD, id="b", subject="d2", data={"display_name": "Ben"}),
        dict(GOOD, id="c", source="youtube", type="comment.posted", subject="UC1", data={}),
    ]
    (workdir / "e.jsonl").write_text("\n".join(json.dumps(e) for e in events))
    run("ingest", "e.jsonl", cwd=workdir)

    revoked = run("revoke", "Ben", "first-words", "--reason", "spam account", "--actor", "mod-ann", cwd=workdir)
    assert "revoked" in revoked.stdout
    missing_reason = run("grant", "Ben", "pillar", cwd=workdir, check=False)
    assert missing_reason.returncode != 0 and "--reason" in missing_reason.stderr
    unknown = run("grant", "Ben", "pilar", "--reason", "x", cwd=workdir, check=False)
    assert unknown.returncode == 2 and "no achievement 'pilar'" in unknown.stderr

    board = run("leaderboard", cwd=workdir).stdout
    assert board.index("Ada") < board.index("Ben")

    code = run("link", "code", "discord:d1", cwd=workdir).stdout.split("link code for discord:d1: ")[1].split()[0]
    linked = run("link", "redeem", code, "youtube:UC1", cwd=workdir)
    assert "linked to member 1" in linked.stdout
    card = run("member", "youtube:UC1", cwd=workdir).stdout
    assert "discord:d1" in card and "youtube:UC1" in card and "2 of 5 contributions" in card
    assert "youtube:UC1 is now member" in run("unlink", "youtube:UC1", cwd=workdir).stdout

    table = run("plugins", cwd=workdir).stdout
    for name in ("count", "jsonl", "web_widget"):
        assert name in table


def test_bad_config_is_a_clear_error(workdir: Path) -> None:
    (workdir / "achievements.toml").write_text("[achievements.x]\nname = 'X'\n")
    result = run("leaderboard", cwd=workdir, check=False)
    assert result.returncode == 2
    assert "achievements.toml: key 'achievements.x.description': Field required" in result.stderr.replace("\n", "")


def test_demo_shows_a_community(workdir: Path) -> None:
    result = run("demo", "--members", "60", "--weeks", "3", "--db", "demo.db", cwd=workdir)
    assert "events stored" in result.stdout and "All-time leaderboard" in result.stdout
    assert "First Words" in result.stdout and "of members" in result.stdout
    board = run("leaderboard", "--db", f"sqlite:///{workdir / 'demo.db'}", cwd=workdir).stdout
    assert "All-time leaderboard" in board and " 1 " in board
