"""How fast the YouTube source reads a busy video, and what it costs in quota.

The real google-api-python-client against the tests' local Data API server (no internet): one
video with ``--threads`` comment threads (every fifth with 8 replies, so comments.list is used),
read in pages of 100 into a SQLite store through the engine. Prints requests, units, events and
time, for a first read (catch-up) and a second read (nothing new: cursors only).

    python bench/bench_youtube.py --threads 2000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "youtube_adapter"))

from fakeyoutube import API_KEY, FakeComment, FakeYouTube  # noqa: E402

from smallwins.adapters.youtube.capture import Poller  # noqa: E402
from smallwins.core.app import build_app  # noqa: E402
from smallwins.core.logs import configure_logging  # noqa: E402
from smallwins.core.runtime import make_sink  # noqa: E402

CHANNEL = "UCcreatorchannel0000000a"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2000)
    args = parser.parse_args()
    configure_logging("WARNING")
    world = FakeYouTube(embedded_replies=5)
    url = world.start()
    now = datetime.now(UTC) - timedelta(days=3)
    world.add_video(CHANNEL, "vidBENCH001", now - timedelta(days=1))
    for n in range(args.threads):
        author = f"UC{n:022d}"
        top = world.comment("vidBENCH001", FakeComment(f"Ugw{n}", author, f"@m{n}", "nice", now, likes=n % 15))
        if n % 5 == 0:
            for r in range(8):
                reply = FakeComment(
                    f"{top.id}.r{r}", f"UC{(n + r + 1):022d}", f"@m{n}", "hi", now + timedelta(minutes=r)
                )
                world.comment("vidBENCH001", reply, reply_to=top.id)
    folder = Path(tempfile.mkdtemp())
    (folder / "plugins.toml").write_text(
        f'[smallwins]\ncatalogue = "{REPO / "tests/youtube_adapter/data/catalogue.toml"}"\n'
        f'[plugins.youtube]\nenabled = true\nchannels = ["{CHANNEL}"]\napi_key_env = "BENCH_YT_KEY"\n'
        f'api_endpoint = "{url}"\ncatch_up_videos = 1\n'
    )
    os.environ["BENCH_YT_KEY"] = API_KEY
    app = build_app(folder / "plugins.toml", database_url=f"sqlite:///{folder / 'bench.db'}")
    clock = [now]
    poller = Poller.from_context(app.context("youtube"), clock=lambda: clock[0])
    sink = make_sink(app, "youtube")
    for label in ("first read (catch-up)", "second read (nothing new)"):
        world.clear()
        started = time.perf_counter()
        anyio.run(poller.poll_once, sink)
        took = time.perf_counter() - started
        asked = world.asked()
        print(
            f"{label}: {len(asked)} requests = {len(asked)} units "
            f"({sum(r.method == 'comments' for r in asked)} comments.list), {poller.stats.events} events so far, "
            f"{took:.2f} s"
        )
        clock[0] += timedelta(hours=1)
    app.close()
    world.stop()


if __name__ == "__main__":
    main()
