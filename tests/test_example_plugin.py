"""The example third-party plugin under examples/, installed with pip and used from the command
line in a folder of its own: a source, a presenter and a rule type behind one entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from textwrap import dedent

import pytest

from tests.conftest import REPO

EXAMPLE = REPO / "examples" / "smallwins-example"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pip-install the example into a folder of its own (the venv stays as it was)."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(EXAMPLE),
        ],
        check=True,
        capture_output=True,
    )
    return target


def smallwins(*args: str, cwd: Path, site: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMALLWINS_")}
    env["PYTHONPATH"] = str(site)
    env["COLUMNS"] = "200"
    return subprocess.run(
        [str(Path(sys.executable).parent / "smallwins"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_example_plugin_end_to_end_from_another_folder(site: Path, tmp_path: Path) -> None:
    community = tmp_path / "srv" / "community"
    community.mkdir(parents=True)
    (community / "plugins.toml").write_text(
        dedent("""
        [smallwins]
        catalogue = "achievements.toml"
        [plugins.example]
        enabled = true
        forum_url = "https://club.example"
        [plugins.example.awards_file]
        path = "out/awards.jsonl"
        """)
    )
    (community / "achievements.toml").write_text(
        dedent("""
        [achievements.essayist]
        name = "Essayist"
        description = "Wrote two long posts."
        rule = "long_post"
        min_words = 5
        threshold = 2
        """)
    )
    posts = [
        {
            "post": {
                "id": n,
                "user_id": 7,
                "username": "Ada",
                "created_at": f"2026-03-0{n}T10:00:00+00:00",
                "raw": "word " * words,
            }
        }
        for n, words in ((1, 12), (2, 2), (3, 9))
    ]
    payloads = [
        *posts,
        {"like": {"post_id": 1, "user_id": 8, "created_at": "2026-03-04T10:00:00+00:00"}},
        {"ping": {}},
        {"post": {"id": 9}},
    ]
    (tmp_path / "payloads.jsonl").write_text("".join(json.dumps(p) + "\n" for p in payloads))
    config = str(community / "plugins.toml")

    listed = smallwins("plugins", "-c", config, cwd=tmp_path, site=site)
    assert listed.returncode == 0, listed.stderr
    for shown in ("source forum", "presenter awards_file", "rule type long_post", "club.example"):
        assert shown in listed.stdout, shown

    ingested = smallwins(
        "ingest", "--source", "forum", str(tmp_path / "payloads.jsonl"), "-c", config, cwd=tmp_path, site=site
    )
    assert ingested.returncode == 1, "the post without fields is reported"
    assert "payloads.jsonl:6:" in ingested.stderr and "could not normalize" in ingested.stderr
    assert "4 stored" in ingested.stdout and "1 achievements awarded" in ingested.stdout

    lines = [json.loads(line) for line in (community / "out" / "awards.jsonl").read_text().splitlines()]
    assert {"kind": "award", "member": "Ada", "awards": ["essayist"]}.items() <= next(
        line for line in lines if line["kind"] == "award"
    ).items()
    assert not (tmp_path / "out").exists(), "the presenter's path is relative to plugins.toml"
