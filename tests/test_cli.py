"""The installed `smallwins` command, run as a user would, against a SQLite file."""

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
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
    shutil.copy(REPO / "tests/data/catalogue.toml", tmp_path / "achievements.toml")
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
    card = run("member", "Ben", cwd=workdir).stdout
    assert "First Words" in card and "revoked" in card, "a revoked badge is labelled as such"
    assert "1 of 1" not in card, "and not listed under Next as if unfinished"
    missing_reason = run("grant", "Ben", "pillar", cwd=workdir, check=False)
    assert missing_reason.returncode != 0 and "--reason" in missing_reason.stderr
    unknown = run("grant", "Ben", "pilar", "--reason", "x", "--actor", "mod-ann", cwd=workdir, check=False)
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


def test_numbers_out_of_range_are_refused_by_name(workdir: Path) -> None:
    """A member id or a row count beyond 64-bit integers was a traceback (OverflowError)."""
    (workdir / "one.jsonl").write_text(json.dumps({**GOOD, "id": "1"}) + "\n")
    run("ingest", "one.jsonl", cwd=workdir)
    huge = "99999999999999999999999"
    for command in (["member", huge], ["links", "member", huge], ["profile", huge, "--private"]):
        said = " ".join(run(*command, cwd=workdir, check=False).stderr.split())
        assert "Traceback" not in said and f"no member '{huge}'" in said, (command, said)
    result = run("leaderboard", "--limit", huge, cwd=workdir, check=False)
    assert result.returncode == 2 and "--limit" in result.stderr and "Traceback" not in result.stderr
    assert "Ada" in run("member", "discord:d1", cwd=workdir).stdout


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("notaurl", "not a database URL"),
        ("mysql://u@localhost/x", "no driver for that kind of database"),
        ("postgresql://u:secret@127.0.0.1:1/x", "'postgresql://u:***@127.0.0.1:1/x': connection failed"),
    ],
)
def test_a_store_that_cannot_be_opened_is_a_clear_error(workdir: Path, url: str, reason: str) -> None:
    result = run("leaderboard", "--db", url, cwd=workdir, check=False)
    said = " ".join(result.stderr.split())
    assert result.returncode == 2 and "Traceback" not in said, said
    assert "error: --db: cannot open the store at" in said and reason in said and "secret" not in said
    config = (workdir / "plugins.toml").read_text()
    (workdir / "plugins.toml").write_text(re.sub(r'(?m)^url = .*$', f'url = "{url}"', config, count=1))
    said = " ".join(run("leaderboard", cwd=workdir, check=False).stderr.split())
    assert "plugins.toml: [smallwins.store] url: cannot open the store at" in said and reason in said, said


def test_reading_a_store_that_is_not_there_says_so_and_creates_nothing(workdir: Path) -> None:
    """A mistyped --db used to create an empty store and show an empty board."""
    for command in (["leaderboard"], ["member", "1"], ["report"], ["outbox"], ["voucher", "stats"]):
        result = run(*command, "--db", "sqlite:///typo.db", cwd=workdir, check=False)
        said = " ".join(result.stderr.split())
        assert result.returncode == 2 and "--db: there is no store at 'typo.db'" in said, (command, said)
    assert not (workdir / "typo.db").exists()
    line = ('{"id": "1", "source": "discord", "type": "message.posted", "subject": "ada",'
            ' "time": "2026-03-02T13:00:00+01:00"}')
    (workdir / "one.jsonl").write_text(line + "\n")
    for url in ("sqlite:///:memory:", "sqlite://"):  # stored nothing, yet "3 stored" was reported
        said = " ".join(run("ingest", "one.jsonl", "--db", url, cwd=workdir, check=False).stderr.split())
        assert "an in-memory SQLite store" in said and "give a file" in said, said
    run("ingest", "one.jsonl", "--db", "sqlite:///typo.db", cwd=workdir)
    assert (workdir / "typo.db").exists(), "ingesting starts a store where there was none"
    assert run("leaderboard", "--db", "sqlite:///typo.db", cwd=workdir).returncode == 0


def test_demo_shows_a_community(tmp_path: Path) -> None:
    """The repo's own plugins.toml and launch catalogue, as `./scripts/demo` runs them."""
    shutil.copy(REPO / "plugins.toml", tmp_path)
    shutil.copy(REPO / "achievements.toml", tmp_path)
    out = run("demo", "--members", "120", "--weeks", "4", "--db", "demo.db", cwd=tmp_path).stdout
    for shown in (
        "events stored",
        "First Words",
        "of members",
        "All-time leaderboard",
        "This week (2026-W40)",
        "Launch week (season)",
        "Vouchers",
        "claim rate",
        "Streaks",
        "On a Roll: current",
    ):
        assert shown in out, shown
    claimed = re.search(r"(\d+) vouchers claimed", out)
    assert claimed and int(claimed.group(1)) > 0, "launch-week awards come with vouchers, and members claim them"
    assert (tmp_path / "demo.db").exists()
    db = f"sqlite:///{tmp_path / 'demo.db'}"
    assert (
        "Launch week" in run("leaderboard", "--board", "launch", "--period", "season", "--db", db, cwd=tmp_path).stdout
    )
    history = run("leaderboard", "--board", "weekly", "--history", "--db", db, cwd=tmp_path).stdout
    assert "2026-W37" in history and "2026-W40" in history
    all_time = run("leaderboard", "--board", "all-time", "--db", db, cwd=tmp_path).stdout
    assert all_time == run("leaderboard", "--db", db, cwd=tmp_path).stdout, "the web API's name for it works here too"
    for wrong, said in [
        (["--board", "weekly", "--period", "lastweek"], "'lastweek' is not a period of 'weekly'"),
        (["--board", "monthly", "--period", "2026-13"], "'2026-13' is not a period of 'monthly'"),
        (["--board", "weekly", "--period", "2026-W60"], "an ISO week such as"),
        (["--board", "weekly", "--period", "2025-W53"], "'2025-W53' is not a period of 'weekly'"),
        (["--period", "2026-W40"], "the all-time board has no periods"),
    ]:
        refused = run("leaderboard", *wrong, "--db", db, cwd=tmp_path, check=False)
        assert refused.returncode == 2 and said in refused.stderr.replace("\n", " "), (wrong, refused.stderr)


def test_backfill_profile_and_vouchers_from_the_command_line(workdir: Path) -> None:
    # Recent days: a voucher comes only with an award younger than the voucher horizon (7 days).
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    days = [(today - timedelta(days=4 - i)).isoformat() for i in range(4)]
    lines = [json.dumps({**GOOD, "id": f"m{i}", "time": day}) for i, day in enumerate(days)]
    (workdir / "e.jsonl").write_text("\n".join(lines))
    run("ingest", "e.jsonl", cwd=workdir)
    catalogue = (workdir / "achievements.toml").read_text()
    catalogue += (
        "\n[achievements.four-days]\nname = 'Four Days'\ndescription = 'Four days in a row.'\n"
        "rule = 'streak'\nevents = ['message.posted']\ntarget = 4\nvoucher_claim_hours = 72\n"
    )
    (workdir / "achievements.toml").write_text(catalogue)
    preview = run("backfill", "--dry-run", cwd=workdir).stdout
    assert "four-days" in preview and "1 would change" in preview and "+four-days" in preview
    assert "4 of 4 days in a row" not in run("member", "Ada", cwd=workdir).stdout, "a dry run changes nothing"
    applied = run("backfill", cwd=workdir).stdout
    assert "1 changed" in applied
    card = run("member", "Ada", cwd=workdir).stdout
    assert "Four Days" in card and "Vouchers" in card and "longest 4" in card
    [voucher] = json.loads(run("member", "Ada", "--json", cwd=workdir).stdout)["vouchers"]
    code = voucher["code"]
    assert voucher["achievement_id"] == "four-days" and code in card
    claimed = run("voucher", "claim", code, cwd=workdir, check=False)
    # The backfill opened the window now, so it can be claimed now, once.
    assert claimed.returncode == 0, claimed.stderr
    again = run("voucher", "claim", code, cwd=workdir, check=False)
    assert again.returncode == 2 and "already claimed" in again.stderr
    assert "100%" in run("voucher", "stats", cwd=workdir).stdout
    bad_zone = run("profile", "Ada", "--timezone", "Mars/Olympus", cwd=workdir, check=False)
    assert bad_zone.returncode == 2 and "IANA" in bad_zone.stderr
    run("profile", "Ada", "--timezone", "America/New_York", "--private", cwd=workdir)
    assert "America/New_York" in run("member", "Ada", cwd=workdir).stdout
    assert "Ada" not in run("leaderboard", cwd=workdir).stdout
    nothing = run("profile", "Ada", cwd=workdir, check=False)
    assert nothing.returncode == 2 and "nothing to change" in nothing.stderr
    never_held = run("revoke", "Ada", "pillar", "--reason", "x", "--actor", "mod-ann", cwd=workdir).stdout
    assert "does not hold pillar" in never_held


def test_shared_options_work_before_or_after_the_command(workdir: Path, tmp_path: Path) -> None:
    (workdir / "e.jsonl").write_text(json.dumps({**GOOD, "id": "x1"}) + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = str(workdir / "plugins.toml")
    run("-c", config, "ingest", str(workdir / "e.jsonl"), cwd=elsewhere)
    before = run("-c", config, "--log-level", "INFO", "member", "Ada", cwd=elsewhere)
    after = run("member", "Ada", "-c", config, "--log-level", "INFO", cwd=elsewhere)
    assert "Ada" in before.stdout and before.stdout == after.stdout
    assert not (elsewhere / "smallwins.db").exists(), "the store is the one next to that plugins.toml"
    logged = run(
        "grant",
        "Ada",
        "pillar",
        "--reason",
        "ran the meetup",
        "--actor",
        "mod-ann",
        "--log-level",
        "DEBUG",
        "--log-format",
        "json",
        cwd=workdir,
    )
    lines = [json.loads(line) for line in logged.stderr.splitlines() if line.startswith("{")]
    assert lines and all("event" in line and "level" in line for line in lines)
    no_actor = run("revoke", "Ada", "pillar", "--reason", "x", cwd=workdir, check=False)
    assert no_actor.returncode != 0 and "--actor" in no_actor.stderr
    assert run("--version", cwd=workdir).stdout.startswith("smallwins ")


def test_runs_in_an_empty_folder_with_the_packaged_defaults(tmp_path: Path) -> None:
    out = run("demo", "--members", "30", "--weeks", "1", cwd=tmp_path)
    assert "packaged defaults" in out.stderr and "First Words" in out.stdout
    assert (tmp_path / "smallwins-demo.db").exists()
