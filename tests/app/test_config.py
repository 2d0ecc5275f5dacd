"""load_settings: defaults < TOML file < VOBIZ_STREAM_* environment < flags, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from vobiz_stream.app.config import (
    DEFAULT_CONFIG_FILE,
    SETTING_NAMES,
    ConfigError,
    Settings,
    load_settings,
)
from vobiz_stream.audio import ByteOrder
from vobiz_stream.errors import VobizStreamError
from vobiz_stream.formats import AudioFormat, Encoding


@pytest.fixture(autouse=True)
def _empty_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No stray vobiz-stream.toml in the working directory."""
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_with_nothing_given() -> None:
    settings = load_settings({}, environ={})
    assert settings == Settings()
    assert (settings.host, settings.port, settings.handler) == ("127.0.0.1", 3000, "record")
    assert settings.bidirectional is True
    assert settings.max_lead == 0.2
    assert settings.byte_order is None  # auto
    assert settings.inbound_format == AudioFormat(Encoding.L16, 8000)
    assert settings.outbound_format is None


def test_precedence_defaults_file_environment_flags(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", 'port = 4000\nhost = "0.0.0.0"\nmax_lead = 0.3\n')
    environ = {"VOBIZ_STREAM_PORT": "5000", "VOBIZ_STREAM_MAX_LEAD": "0.4"}
    flags = {"port": 6000, "max_lead": None, "handler": None}

    settings = load_settings(flags, environ=environ, config_file=config)
    assert settings.port == 6000  # flag beats everything
    assert settings.max_lead == 0.4  # a None flag is "not given": the environment wins
    assert settings.host == "0.0.0.0"  # only in the file
    assert settings.handler == "record"  # nowhere: the default

    assert load_settings({}, environ=environ, config_file=config).port == 5000
    assert load_settings({}, environ={}, config_file=config).port == 4000
    assert load_settings({}, environ={}).port == 3000


def test_serve_section_or_top_level(tmp_path: Path) -> None:
    section = write(tmp_path / "a.toml", '[serve]\nport = 4100\nhandler = "echo"\n')
    top = write(tmp_path / "b.toml", 'port = 4200\nhandler = "echo"\n')
    assert load_settings({}, environ={}, config_file=section).port == 4100
    assert load_settings({}, environ={}, config_file=top).port == 4200
    assert load_settings({}, environ={}, config_file=top).handler == "echo"


def test_config_file_from_the_environment_and_the_working_directory(tmp_path: Path) -> None:
    named = write(tmp_path / "named.toml", "port = 4300\n")
    environ = {"VOBIZ_STREAM_CONFIG": str(named)}
    assert load_settings({}, environ=environ).port == 4300

    write(Path(DEFAULT_CONFIG_FILE), "port = 4400\n")  # in the working directory
    assert load_settings({}, environ={}).port == 4400
    # An explicit file wins over both.
    explicit = write(tmp_path / "explicit.toml", "port = 4500\n")
    assert load_settings({}, environ=environ, config_file=explicit).port == 4500
    assert load_settings({}, environ=environ).port == 4300


def test_types_are_converted_from_text(tmp_path: Path) -> None:
    environ = {
        "VOBIZ_STREAM_PORT": "8080",
        "VOBIZ_STREAM_MAX_LEAD": "0.25",
        "VOBIZ_STREAM_DATA_DIR": str(tmp_path / "d"),
        "VOBIZ_STREAM_BIDIRECTIONAL": "false",
        "VOBIZ_STREAM_PUBLIC_URL": "https://abc.example",
    }
    settings = load_settings({}, environ=environ)
    assert settings.port == 8080
    assert settings.max_lead == 0.25
    assert settings.data_dir == tmp_path / "d"
    assert isinstance(settings.data_dir, Path)
    assert settings.bidirectional is False
    assert settings.public_url == "https://abc.example"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        (" yes ", True),
        ("1", True),
        ("false", False),
        ("No", False),
        ("0", False),
    ],
)
def test_bool_parsing(text: str, expected: bool) -> None:
    environ = {"VOBIZ_STREAM_KEEP_CALL_ALIVE": text}
    assert load_settings({}, environ=environ).keep_call_alive is expected


def test_bool_from_toml_is_kept(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", "bidirectional = false\nkeep_call_alive = false\n")
    settings = load_settings({}, environ={}, config_file=config)
    assert settings.bidirectional is False
    assert settings.keep_call_alive is False


@pytest.mark.parametrize("text", ["maybe", "", "on", "2"])
def test_bad_bool_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="keep_call_alive") as caught:
        load_settings({}, environ={"VOBIZ_STREAM_KEEP_CALL_ALIVE": text})
    assert "bool" in str(caught.value)


def test_unknown_setting_in_the_file_lists_the_known_ones(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", "[serve]\nprot = 3000\nmax_leed = 1\n")
    with pytest.raises(ConfigError) as caught:
        load_settings({}, environ={}, config_file=config)
    message = str(caught.value)
    assert str(config) in message
    assert "unknown setting(s) max_leed, prot" in message
    known = message.split("known: ", 1)[1]
    assert known.split(", ") == list(SETTING_NAMES)
    assert "port" in SETTING_NAMES and "max_lead" in SETTING_NAMES


def test_unknown_environment_variables_are_not_settings() -> None:
    settings = load_settings({}, environ={"VOBIZ_STREAM_NOT_A_SETTING": "x", "PORT": "1"})
    assert settings == Settings()


def test_config_file_that_is_not_toml(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", "port = = 3\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_settings({}, environ={}, config_file=config)


def test_config_file_that_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read config file .*missing\.toml"):
        load_settings({}, environ={}, config_file=tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings({}, environ={"VOBIZ_STREAM_CONFIG": str(tmp_path / "nope.toml")})


@pytest.mark.parametrize("port", ["0", "65536", "-1"])
def test_port_out_of_range(port: str) -> None:
    with pytest.raises(ConfigError, match=f"port must be 1-65535, got {port}"):
        load_settings({}, environ={"VOBIZ_STREAM_PORT": port})


@pytest.mark.parametrize("port", ["1", "65535"])
def test_port_at_the_edges_of_the_range(port: str) -> None:
    assert load_settings({}, environ={"VOBIZ_STREAM_PORT": port}).port == int(port)


def test_port_that_is_not_a_number() -> None:
    with pytest.raises(ConfigError, match=r"setting port = 'http' is not a valid int"):
        load_settings({}, environ={"VOBIZ_STREAM_PORT": "http"})


@pytest.mark.parametrize("value", ["true", "3000.5"])
def test_port_of_the_wrong_type_in_the_file_is_refused(tmp_path: Path, value: str) -> None:
    """TOML ``port = true`` or ``port = 3000.5`` must not quietly become port 1 or 3000."""
    config = write(tmp_path / "c.toml", f"port = {value}\n")
    with pytest.raises(ConfigError, match="port"):
        load_settings({}, environ={}, config_file=config)


@pytest.mark.parametrize(
    ("order", "expected"),
    [("auto", None), ("little", ByteOrder.LITTLE), ("big", ByteOrder.BIG)],
)
def test_l16_byte_order(order: str, expected: ByteOrder | None) -> None:
    settings = load_settings({"l16_byte_order": order}, environ={})
    assert settings.byte_order is expected


def test_bad_l16_byte_order() -> None:
    with pytest.raises(ConfigError, match="l16_byte_order must be auto, little or big, got 'mid'"):
        load_settings({"l16_byte_order": "mid"}, environ={})


def test_content_types_are_parsed() -> None:
    settings = load_settings(
        {
            "content_type": "audio/x-mulaw;rate=8000",
            "outbound_content_type": "audio/x-l16;rate=24000",
        },
        environ={},
    )
    assert settings.inbound_format == AudioFormat(Encoding.MULAW, 8000)
    assert settings.outbound_format == AudioFormat(Encoding.L16, 24000)


@pytest.mark.parametrize(
    "flags",
    [
        {"content_type": "audio/wav"},
        {"content_type": "audio/x-l16;rate=fast"},
        {"outbound_content_type": "video/mp4"},
    ],
)
def test_bad_content_types(flags: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="content type setting") as caught:
        load_settings(flags, environ={})
    assert next(iter(flags.values())).split(";")[0] in str(caught.value)


@pytest.mark.parametrize("value", ["0.01", "0", "-1"])
def test_max_lead_below_one_frame(value: str) -> None:
    with pytest.raises(ConfigError, match=r"max_lead must be at least one 20 ms frame \(0.02\)"):
        load_settings({}, environ={"VOBIZ_STREAM_MAX_LEAD": value})


def test_max_lead_of_exactly_one_frame_is_allowed() -> None:
    assert load_settings({"max_lead": 0.02}, environ={}).max_lead == 0.02


def test_max_lead_that_is_not_a_number() -> None:
    with pytest.raises(ConfigError, match="setting max_lead = 'soon' is not a valid float"):
        load_settings({}, environ={"VOBIZ_STREAM_MAX_LEAD": "soon"})


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_max_lead_must_be_a_finite_number(value: str) -> None:
    """``nan`` passes ``max_lead < 0.02`` unnoticed, and the ledger then sends everything at
    once (``x > nan`` is never true); ``inf`` does the same on purpose-looking terms."""
    with pytest.raises(ConfigError, match="max_lead"):
        load_settings({}, environ={"VOBIZ_STREAM_MAX_LEAD": value})


def test_config_error_is_in_the_package_family() -> None:
    with pytest.raises(VobizStreamError):
        load_settings({"port": 0}, environ={})
    assert issubclass(ConfigError, ValueError)


def test_derived_paths_follow_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "var" / "vobiz"
    settings = load_settings({}, environ={"VOBIZ_STREAM_DATA_DIR": str(data)})
    assert settings.recordings_dir == data / "recordings"
    assert settings.database_path == data / "vobiz-stream.db"
    assert settings.webhook_log_path == data / "webhook-events.log"
    default = load_settings({}, environ={})
    assert default.recordings_dir == Path("data") / "recordings"


def test_data_dir_from_the_file_is_a_path(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", '[serve]\ndata_dir = "/srv/calls"\n')
    settings = load_settings({}, environ={}, config_file=config)
    assert settings.data_dir == Path("/srv/calls")
    assert settings.database_path == Path("/srv/calls/vobiz-stream.db")


@pytest.mark.parametrize(
    ("name", "value"),
    [("audio_track", "sideways"), ("status_callback_method", "PUT"), ("log_level", "LOUD")],
)
def test_settings_the_cli_restricts_are_checked_from_file_and_environment_too(
    name: str, value: str
) -> None:
    """``serve --audio-track`` only takes inbound/outbound/both, but the same setting from the
    environment or the file is not checked: it fails later, outside the ConfigError family
    (``AudioTrack('sideways')`` in StreamServer, ``logging.basicConfig(level='LOUD')``)."""
    with pytest.raises(ConfigError, match=name):
        load_settings({}, environ={f"VOBIZ_STREAM_{name.upper()}": value})


def test_admin_token_and_new_timeouts_load_from_the_environment() -> None:
    settings = load_settings(
        {},
        environ={
            "VOBIZ_STREAM_ADMIN_TOKEN": "a" * 16,
            "VOBIZ_STREAM_START_TIMEOUT": "2.5",
            "VOBIZ_STREAM_TRUST_PROXY": "true",
        },
    )
    assert (settings.admin_token, settings.start_timeout, settings.trust_proxy) == (
        "a" * 16,
        2.5,
        True,
    )
    assert "a" * 16 not in repr(settings)


def test_a_short_admin_token_is_refused_without_showing_it() -> None:
    with pytest.raises(ConfigError, match="admin_token has 5 characters") as caught:
        load_settings({"admin_token": "hunter"[:5]}, environ={})
    assert "hunte" not in str(caught.value)
