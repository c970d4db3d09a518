"""Settings of the ``youtube`` plugin (``[plugins.youtube]`` in plugins.toml); the API key by ``*_env``.

The numbers that spend quota (how often recent and old videos are read, how many videos are
followed, the daily budget) are all here, so an operator can see what a day will cost.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: A channel id as YouTube prints it: ``UC`` and 22 characters of URL-safe base64.
CHANNEL_ID = re.compile(r"^UC[A-Za-z0-9_-]{22}$")


class YouTubeSettings(BaseModel):
    """The ``youtube`` source: which channels, which key, and how to spend the daily quota."""

    model_config = ConfigDict(extra="forbid")

    api_key_env: str = Field(
        default="SMALLWINS_YOUTUBE_API_KEY", description="variable holding the Data API key (never the key itself)"
    )
    channels: list[str] = Field(default_factory=list, description="channel ids (UC...) whose videos' comments count")
    daily_quota: int = Field(
        default=9000,
        ge=10,
        le=100_000_000,
        description="units this source may spend per day (Google's default project quota is 10,000)",
    )
    recent_days: float = Field(default=7, ge=0, description="a video younger than this is 'recent'")
    recent_poll_seconds: float = Field(default=15 * 60, ge=0.01, description="how often a recent video is read")
    old_poll_seconds: float = Field(default=6 * 3600, ge=0.01, description="how often an older video is read")
    uploads_poll_seconds: float = Field(default=3600, ge=0.01, description="how often new uploads are looked for")
    catch_up_videos: int = Field(
        default=10, ge=0, le=500, description="first enable: read all comments of this many newest videos"
    )
    max_videos: int = Field(default=50, ge=1, le=5000, description="follow at most this many newest videos")
    like_threshold: int = Field(
        default=10, ge=1, description="a comment with this many likes counts as approved by peers"
    )
    like_window_days: float = Field(
        default=28,
        ge=0,
        description="likes are undated: a like approval is dated when seen, at most this long after the comment",
    )
    link_codes: bool = Field(default=True, description="a link code in a comment links the channel to a member")
    page_size: int = Field(default=100, ge=1, le=100, description="comment threads per request (100 at most)")
    max_retries: int = Field(default=4, ge=0, le=20, description="tries after a 5xx or network error, with backoff")
    backoff_seconds: float = Field(default=2.0, gt=0, description="first wait after a transient error (doubles)")
    backoff_max_seconds: float = Field(default=300.0, gt=0, description="longest wait between tries")
    timeout_seconds: float = Field(default=30.0, gt=0, description="network timeout of one request")
    api_endpoint: str | None = Field(
        default=None, description="another API root (tests: http://127.0.0.1:PORT); default Google's"
    )

    @field_validator("channels")
    @classmethod
    def _channels(cls, value: list[str]) -> list[str]:
        result: list[str] = []
        for channel in value:
            channel = channel.strip()
            if not CHANNEL_ID.match(channel):
                raise ValueError(
                    f"'{channel}' is not a channel id like UCxxxxxxxxxxxxxxxxxxxxxx "
                    "(UC and 22 letters, digits, - or _); "
                    "a @handle or a video URL will not do: the id is on the channel's About page, 'Share channel'"
                )
            if channel not in result:
                result.append(channel)
        return result

    @field_validator("api_endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"'{value}' is not an http(s) URL like https://youtube.googleapis.com")
        return value.rstrip("/") if value else None

    @model_validator(mode="after")
    def _consistent(self) -> YouTubeSettings:
        if self.catch_up_videos > self.max_videos:
            raise ValueError(
                f"catch_up_videos ({self.catch_up_videos}) is more than max_videos ({self.max_videos}): "
                "caught-up videos would not be followed"
            )
        if self.backoff_max_seconds < self.backoff_seconds:
            raise ValueError("backoff_max_seconds must be at least backoff_seconds")
        return self
