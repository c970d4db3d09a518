"""Loading and validating ``plugins.toml`` (operator settings) and the achievement catalogue.

Every error names the file, the key and what was expected, because an operator reads it.
Secrets never live in these files: a setting ending in ``_env`` names an environment variable.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from smallwins.core.leaderboards import ALL_TIME
from smallwins.core.rules import Achievement, Catalogue, Experiment, LeaderboardSpec, RuleType, Window

#: Setting names that look like a secret written in the clear.
SECRET_WORDS = ("token", "password", "secret", "api_key", "apikey")


#: The plugins.toml (and, next to it, the launch catalogue) packaged with smallwins: used when
#: no plugins.toml is found, so an installed smallwins runs in an empty folder.
DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "defaults" / "plugins.toml"


#: The most points one event type or achievement may be worth: totals stay far inside the
#: databases' 64-bit integers (a bigger value made an ingest fail at its first write).
MAX_POINTS = 1_000_000


class ConfigError(ValueError):
    """A configuration file is missing, unreadable or does not say what it must."""


def validation_message(path: Path, table: str, exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        key = ".".join([table, *(str(part) for part in error["loc"])]).strip(".")
        problems.append(f"{path}: key '{key}': {error['msg']}")
    return "\n".join(problems)


def load_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file or raise :class:`ConfigError` naming the file and the line."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a TOML file") from None
    except PermissionError:
        raise ConfigError(f"{path}: not readable (permission denied)") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (TOML must be): byte {exc.start} cannot be read") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"'{name}' is not an IANA time zone name (e.g. 'Europe/Berlin')") from None
    return name


TimezoneName = Annotated[str, AfterValidator(check_timezone)]


class StoreSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = "sqlite:///smallwins.db"
    url_env: str | None = Field(
        default="SMALLWINS_DATABASE_URL",
        description="environment variable that, when set, overrides url",
    )


class CoreSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    catalogue: str = "achievements.toml"
    default_timezone: TimezoneName = "UTC"
    link_code_ttl_minutes: int = Field(default=30, ge=1, le=7 * 24 * 60)
    on_retraction: Literal["revoke", "keep"] = Field(
        default="revoke",
        description="an award whose evidence was retracted (a deleted message): revoke it (audited) or keep it",
    )
    voucher_horizon_days: float = Field(
        default=7,
        ge=0,
        description="an award earned longer ago than this (imported history) issues no voucher",
    )
    store: StoreSettings = StoreSettings()


@dataclass
class AppConfig:
    """The validated ``plugins.toml``: core settings and each plugin's raw table."""

    path: Path
    core: CoreSettings
    plugin_tables: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def base_dir(self) -> Path:
        """Where relative paths in the file point: next to it, or, for the packaged defaults,
        the current folder (the database must not land inside the installed package)."""
        return Path.cwd() if self.path.absolute() == DEFAULT_CONFIG else self.path.parent

    @property
    def enabled_plugins(self) -> list[str]:
        return [name for name, table in self.plugin_tables.items() if table.get("enabled", False)]

    def database_url(self) -> str:
        """The store URL: the environment override if set, else the file's, relative to it."""
        store = self.core.store
        url = os.environ.get(store.url_env) if store.url_env else None
        url = url or store.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite://":
            url = prefix + str(self.base_dir / url[len(prefix) :])
        return url

    def catalogue_path(self) -> Path:
        """The achievements catalogue the file names, relative to the file's folder; a clear
        error (this file, its key) when there is none."""
        path = self.base_dir / self.core.catalogue
        if self.path.absolute() == DEFAULT_CONFIG and not path.exists():
            return DEFAULT_CONFIG.parent / self.core.catalogue
        if not path.exists():
            raise ConfigError(
                f"{self.path}: key 'smallwins.catalogue': {path} not found (the achievements catalogue, a TOML "
                "file; a relative path is read from this file's folder)"
            )
        return path


def resolve_secret(env_name: str, *, setting: str) -> str:
    """The value of the environment variable a ``*_env`` setting names, or a clear error."""
    value = os.environ.get(env_name)
    if not value:
        raise ConfigError(f"setting '{setting}' names environment variable {env_name}, which is not set")
    return value


def load_app_config(path: Path) -> AppConfig:
    """Read ``plugins.toml``. Unknown top-level tables and non-table plugin entries are errors."""
    raw = load_toml(path)
    unknown = sorted(set(raw) - {"smallwins", "plugins"})
    if unknown:
        raise ConfigError(f"{path}: key '{unknown[0]}': unknown table; expected only [smallwins] and [plugins.NAME]")
    try:
        core = CoreSettings.model_validate(raw.get("smallwins", {}))
    except ValidationError as exc:
        raise ConfigError(validation_message(path, "smallwins", exc)) from None
    plugins = raw.get("plugins", {})
    if not isinstance(plugins, dict):
        raise ConfigError(f"{path}: key 'plugins': expected a table of [plugins.NAME] tables")
    for name, table in plugins.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: key 'plugins.{name}': expected a table, got {type(table).__name__}")
        if not isinstance(table.get("enabled", False), bool):
            raise ConfigError(f"{path}: key 'plugins.{name}.enabled': expected true or false")
    return AppConfig(path=path, core=core, plugin_tables=plugins)


class AchievementEntry(BaseModel):
    """The keys every achievement has; the rest belong to its rule type."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, max_length=80)
    description: str = Field(min_length=1, max_length=200, description="understood in one sentence")
    rule: str
    points: int = Field(default=0, ge=0, le=MAX_POINTS)
    tier: str | None = Field(default=None, max_length=40, description="tier or rarity label")
    ladder: str | None = Field(default=None, max_length=80)
    available_from: AwareDatetime | None = Field(default=None, description="season start (inclusive)")
    available_until: AwareDatetime | None = Field(default=None, description="season end (exclusive)")
    voucher_claim_hours: float | None = Field(default=None, gt=0, le=24 * 365, description="issue a voucher")
    grants_role: str | None = Field(default=None, max_length=60, description="capability label, e.g. mentor")
    holdout: float = Field(
        default=0, ge=0, le=0.5, description="share of members who are not shown it (computed all the same)"
    )
    expected_lift: float | None = Field(
        default=None, gt=0, lt=1, description="the lift in the return rate the holdout should detect (0.05 = 5 points)"
    )
    launched_at: AwareDatetime | None = Field(default=None, description="launch date, for before/after cohorts")

    @model_validator(mode="after")
    def _window_is_complete(self) -> AchievementEntry:
        if (self.available_from is None) != (self.available_until is None):
            raise ValueError("available_from and available_until go together")
        if self.available_from and self.available_until and self.available_until <= self.available_from:
            raise ValueError("available_until must be after available_from")
        return self

    def window(self) -> Window | None:
        if self.available_from is None or self.available_until is None:
            return None
        return Window(self.available_from.astimezone(UTC), self.available_until.astimezone(UTC))


class ExperimentEntry(BaseModel):
    """The ``[experiment]`` table: how holdouts are drawn (``salt``) and judged."""

    model_config = ConfigDict(extra="forbid")

    salt: str = Field(min_length=1, max_length=200, description="seeds who is held out; change it to redraw")
    window_days: int = Field(default=7, ge=1, le=90, description="outcome: returned within this many days")
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    power: float = Field(default=0.8, gt=0.5, lt=1)


class LeaderboardEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=80)
    period: Literal["week", "month", "season"]
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None

    @model_validator(mode="after")
    def _season_has_window(self) -> LeaderboardEntry:
        if self.period == "season" and (self.start is None or self.end is None or self.end <= self.start):
            raise ValueError("a season leaderboard needs start and end, end after start")
        return self


def parse_catalogue(raw: Mapping[str, Any], rule_types: Mapping[str, RuleType], *, path: Path) -> Catalogue:
    """Validate a catalogue document against the installed rule types."""
    unknown = sorted(set(raw) - {"points", "achievements", "leaderboards", "experiment"})
    if unknown:
        raise ConfigError(
            f"{path}: key '{unknown[0]}': unknown table; expected [points], [achievements.ID], [leaderboards.ID],"
            " [experiment]"
        )
    tables = (("points", "[points]"), ("achievements", "[achievements.ID]"), ("leaderboards", "[leaderboards.ID]"))
    for key, shape in tables:
        if not isinstance(raw.get(key, {}), dict):
            raise ConfigError(f"{path}: key '{key}': expected a table ({shape}), got {type(raw[key]).__name__}")
    points = raw.get("points", {})
    for event_type, value in points.items():
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_POINTS:
            raise ConfigError(
                f"{path}: key 'points.\"{event_type}\"': expected a whole number from 0 to {MAX_POINTS:,}"
            )
    entries = raw.get("achievements", {})
    if not entries:
        raise ConfigError(f"{path}: key 'achievements': expected at least one [achievements.ID] table")
    achievements: dict[str, Achievement] = {}
    for achievement_id, table in entries.items():
        where = f"achievements.{achievement_id}"
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: key '{where}': expected a table")
        try:
            entry = AchievementEntry.model_validate(table)
        except ValidationError as exc:
            raise ConfigError(validation_message(path, where, exc)) from None
        rule = rule_types.get(entry.rule)
        if rule is None:
            known = ", ".join(sorted(rule_types)) or "(none installed)"
            raise ConfigError(f"{path}: key '{where}.rule': unknown rule type '{entry.rule}'; expected one of: {known}")
        try:
            params = rule.params_model.model_validate(entry.model_extra or {})
        except ValidationError as exc:
            raise ConfigError(validation_message(path, where, exc)) from None
        achievements[achievement_id] = Achievement(
            id=achievement_id,
            name=entry.name,
            description=entry.description,
            rule=rule,
            params=params,
            points=entry.points,
            tier=entry.tier,
            ladder=entry.ladder,
            window=entry.window(),
            voucher_hours=entry.voucher_claim_hours,
            role=entry.grants_role,
            holdout=entry.holdout,
            expected_lift=entry.expected_lift,
            launched_at=entry.launched_at.astimezone(UTC) if entry.launched_at else None,
        )
    return Catalogue(
        achievements=achievements,
        event_points=dict(points),
        leaderboards=_parse_leaderboards(raw.get("leaderboards", {}), path=path),
        experiment=_parse_experiment(raw.get("experiment"), achievements, path=path),
        fingerprint=hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()[:16],
    )


def _parse_leaderboards(tables: Mapping[str, Any], *, path: Path) -> dict[str, LeaderboardSpec]:
    boards = {}
    for board_id, table in tables.items():
        where = f"leaderboards.{board_id}"
        if board_id == ALL_TIME:
            raise ConfigError(
                f"{path}: key '{where}': '{ALL_TIME}' is the built-in board of all points; choose another id"
            )
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: key '{where}': expected a table")
        try:
            entry = LeaderboardEntry.model_validate(table)
        except ValidationError as exc:
            raise ConfigError(validation_message(path, where, exc)) from None
        # In UTC, as events' times are: comparing instants of one zone skips both offsets (per credit)
        window = Window(entry.start.astimezone(UTC), entry.end.astimezone(UTC)) if entry.start and entry.end else None
        boards[board_id] = LeaderboardSpec(id=board_id, name=entry.name, period=entry.period, window=window)
    return boards


def _parse_experiment(table: Any, achievements: Mapping[str, Achievement], *, path: Path) -> Experiment:
    """The ``[experiment]`` table; required (for its salt) once any achievement has a holdout."""
    held = sorted(a.id for a in achievements.values() if a.holdout > 0)
    if table is None:
        if held:
            raise ConfigError(
                f"{path}: key 'experiment.salt': required because achievements.{held[0]} has a holdout"
                ' (add [experiment] salt = "any text"; changing it redraws who is held out)'
            )
        return Experiment()
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: key 'experiment': expected a table")
    try:
        entry = ExperimentEntry.model_validate(table)
    except ValidationError as exc:
        raise ConfigError(validation_message(path, "experiment", exc)) from None
    return Experiment(salt=entry.salt, window_days=entry.window_days, confidence=entry.confidence, power=entry.power)


def load_catalogue(path: Path, rule_types: Mapping[str, RuleType]) -> Catalogue:
    return parse_catalogue(load_toml(path), rule_types, path=path)
