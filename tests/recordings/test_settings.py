"""The recording settings: checked at start, with messages that say what to write."""

from __future__ import annotations

from pathlib import Path

import pytest

from vobiz_stream.app.config import Settings, load_settings
from vobiz_stream.errors import ConfigError


def settings(**flags: object) -> Settings:
    return load_settings(flags, environ={})


def test_the_local_folder_is_where_recordings_are_written(tmp_path: Path) -> None:
    assert settings(data_dir=tmp_path).recordings_dir == tmp_path / "recordings"
    assert settings(data_dir=tmp_path, recordings=str(tmp_path / "x")).recordings_dir == (
        tmp_path / "x"
    )
    staged = settings(data_dir=tmp_path, recordings="s3://calls/rec")
    assert staged.recordings_dir == tmp_path / "recordings"


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        ({"recordings": "gs://calls"}, "use a folder (data/recordings) or s3://bucket/prefix"),
        ({"recordings": "s3://UPPER/x"}, "not a bucket name"),
        ({"recording_webhook": "example.net/saved"}, "recording_webhook"),
        ({"s3_endpoint_url": "ftp://example.net"}, "not an http(s) URL"),
        ({"upload_concurrency": 0}, "upload_concurrency must be 1-32"),
        ({"upload_concurrency": 33}, "upload_concurrency must be 1-32"),
    ],
)
def test_bad_settings_stop_the_start(flags: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings(**flags)
    assert says in str(caught.value)


def test_secrets_do_not_show_in_the_settings_repr() -> None:
    shown = repr(settings(s3_access_key_id="AKIAKEY", s3_secret_access_key="very-secret"))
    assert "very-secret" not in shown and "AKIAKEY" not in shown
