from pathlib import Path
from typing import Any

import pytest

from smallwins.core.app import build_app
from smallwins.core.components import enabled_components
from smallwins.core.config import ConfigError, load_app_config, load_catalogue, resolve_secret
from smallwins.core.plugins import PluginHost

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_repo_example_config_loads(host: PluginHost) -> None:
    config = load_app_config(REPO / "plugins.toml")
    assert set(config.enabled_plugins) >= {"jsonl", "web_widget"}
    catalogue = load_catalogue(config.catalogue_path(), host.rule_types())
    assert catalogue.achievements["regular"].params.threshold == 5


def test_invalid_toml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "plugins.toml", "[smallwins]\ncatalogue = \n")
    with pytest.raises(ConfigError) as caught:
        load_app_config(path)
    assert str(path) in str(caught.value) and "line 2" in str(caught.value)


def test_wrong_type_names_key_and_expectation(tmp_path: Path) -> None:
    path = write(tmp_path, "plugins.toml", "[smallwins]\nlink_code_ttl_minutes = 'soon'\n")
    with pytest.raises(ConfigError, match=r"key 'smallwins.link_code_ttl_minutes': Input should be a valid integer"):
        load_app_config(path)


def test_a_missing_catalogue_names_the_config_file_and_its_key(tmp_path: Path) -> None:
    path = write(tmp_path, "plugins.toml", "[smallwins]\ncatalogue = 'nope.toml'\n")
    with pytest.raises(ConfigError) as caught:
        build_app(path, database_url=f"sqlite:///{tmp_path / 'x.db'}")
    said = str(caught.value)
    assert said.startswith(f"{path}: key 'smallwins.catalogue': {tmp_path / 'nope.toml'} not found"), said
    assert not (tmp_path / "x.db").exists(), "refused before the store is opened"


def test_bad_timezone_and_unknown_table(tmp_path: Path) -> None:
    path = write(tmp_path, "plugins.toml", "[smallwins]\ndefault_timezone = 'Mars/Olympus'\n")
    with pytest.raises(ConfigError, match=r"smallwins\.default_timezone.*IANA"):
        load_app_config(path)
    path = write(tmp_path, "plugins.toml", "[plugin.jsonl]\nenabled = true\n")
    with pytest.raises(ConfigError, match="key 'plugin': unknown table"):
        load_app_config(path)


def test_enabled_must_be_boolean(tmp_path: Path) -> None:
    path = write(tmp_path, "plugins.toml", "[plugins.jsonl]\nenabled = 'yes'\n")
    with pytest.raises(ConfigError, match=r"plugins\.jsonl\.enabled': expected true or false"):
        load_app_config(path)


def test_secret_in_file_is_refused_and_env_reference_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "plugins.toml", "[plugins.web_widget]\nenabled = true\ntoken = 'abc'\n")
    config = load_app_config(path)
    with pytest.raises(ConfigError, match="secrets must not be written in the file"):
        enabled_components(config, PluginHost())
    with pytest.raises(ConfigError, match="SW_TEST_TOKEN, which is not set"):
        resolve_secret("SW_TEST_TOKEN", setting="plugins.x.token_env")
    monkeypatch.setenv("SW_TEST_TOKEN", "s3cret")
    assert resolve_secret("SW_TEST_TOKEN", setting="plugins.x.token_env") == "s3cret"


def test_unknown_plugin_and_bad_plugin_setting(tmp_path: Path) -> None:
    write(tmp_path, "achievements.toml", (REPO / "achievements.toml").read_text())
    path = write(tmp_path, "plugins.toml", "[plugins.telepathy]\nenabled = true\n")
    with pytest.raises(ConfigError, match="no installed plugin named 'telepathy'"):
        build_app(path)
    path = write(tmp_path, "plugins.toml", "[plugins.web_widget]\nenabled = true\noutput_directory = 'x'\n")
    with pytest.raises(ConfigError, match=r"plugins\.web_widget\.output_directory': not a setting of any component"):
        build_app(path)
    assert not (tmp_path / "smallwins.db").exists(), "a bad config must fail before the store is touched"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[achievements.a]\nname='A'\ndescription='d'\nrule='sorcery'\n",
            "achievements.a.rule': unknown rule type 'sorcery'",
        ),
        (
            "[achievements.a]\nname='A'\ndescription='d'\nrule='count'\nevents=['message.posted']\nthreshold=0\n",
            "achievements.a.threshold': Input should be greater than or equal to 1",
        ),
        ("[achievements.a]\nname='A'\ndescription='d'\nrule='count'\nevents=['Posted']\n", "achievements.a.events.0'"),
        (
            "[achievements.a]\nname='A'\nrule='count'\nevents=['message.posted']\n",
            "achievements.a.description': Field required",
        ),
        (
            "[achievements.a]\nname='A'\ndescription='d'\nrule='count'\nevents=['message.posted']\nthreshhold=3\n",
            "achievements.a.threshhold': Extra inputs are not permitted",
        ),
        (
            "[points]\n'message.posted' = -1\n[achievements.a]\nname='A'\n"
            "description='d'\nrule='count'\nevents=['a.b']\n",
            'points."message.posted"\': expected a whole number',
        ),
        ("[points]\n", "key 'achievements': expected at least one"),
        (  # a total this large failed the ingest at its first write (64-bit integers)
            "[points]\n'message.posted' = 99999999999999999999\n[achievements.a]\nname='A'\n"
            "description='d'\nrule='count'\nevents=['a.b']\n",
            'points."message.posted"\': expected a whole number from 0 to 1,000,000',
        ),
        (
            "[achievements.a]\nname='A'\ndescription='d'\nrule='count'\nevents=['a.b']\npoints=9223372036854775807\n",
            "key 'achievements.a.points': Input should be less than or equal to 1000000",
        ),
        # a plain value where a table belongs (a new user's `points = 3`) was a traceback
        ("points = 3\n[achievements.a]\nname='A'\ndescription='d'\nrule='count'\nevents=['a.b']\n",
         "key 'points': expected a table ([points]), got int"),
        ("achievements = 'all'\n", "key 'achievements': expected a table ([achievements.ID]), got str"),
        ("leaderboards = 3\n[achievements.a]\nname='A'\ndescription='d'\nrule='count'\nevents=['a.b']\n",
         "key 'leaderboards': expected a table ([leaderboards.ID]), got int"),
        (
            "[leaderboards.all-time]\nname='Mine'\nperiod='week'\n"
            "[achievements.a]\nname='A'\ndescription='d'\nrule='count'\nevents=['a.b']\n",
            "key 'leaderboards.all-time': 'all-time' is the built-in board of all points",
        ),
    ],
)
def test_bad_catalogue_errors_name_the_key(tmp_path: Path, host: PluginHost, text: str, message: str) -> None:
    path = write(tmp_path, "achievements.toml", text)
    with pytest.raises(ConfigError) as caught:
        load_catalogue(path, host.rule_types())
    assert str(path) in str(caught.value)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda path: path.write_bytes(b'name = "\xff\xfe"\n'), "not UTF-8 text (TOML must be): byte 8 cannot be read"),
        (lambda path: path.mkdir(), "is a directory, not a TOML file"),
    ],
)
def test_a_toml_file_that_cannot_be_read_is_a_clear_error(
    tmp_path: Path, host: PluginHost, make: Any, message: str
) -> None:
    """Both files, the catalogue and plugins.toml: an error naming the file, not a traceback."""
    path = tmp_path / "some.toml"
    make(path)
    for load in (load_app_config, lambda p: load_catalogue(p, host.rule_types())):
        with pytest.raises(ConfigError) as caught:
            load(path)
        assert str(caught.value) == f"{path}: {message}"
