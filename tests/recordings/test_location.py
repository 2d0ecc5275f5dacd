"""``--recordings`` URLs and the S3 access settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from vobiz_stream.recordings import ObjectFolder, RecordingsError, S3Access, recordings_target

DEFAULT = Path("data/recordings")


def test_a_folder_or_nothing_is_local() -> None:
    assert recordings_target(None, DEFAULT) == DEFAULT
    assert recordings_target("", DEFAULT) == DEFAULT
    assert recordings_target("/srv/calls", DEFAULT) == Path("/srv/calls")
    assert recordings_target("file:///srv/calls", DEFAULT) == Path("/srv/calls")


def test_an_s3_url_names_bucket_and_prefix() -> None:
    folder = recordings_target("s3://calls/rec/2026/", DEFAULT)
    assert folder == ObjectFolder("calls", "rec/2026")
    assert isinstance(folder, ObjectFolder)
    assert folder.key("a.wav") == "rec/2026/a.wav"
    assert folder.url("a.wav") == "s3://calls/rec/2026/a.wav"
    assert ObjectFolder("calls").url("a.wav") == "s3://calls/a.wav"
    assert str(folder) == "s3://calls/rec/2026"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("gs://calls/x", "s3://bucket/prefix"),
        ("s3://Calls/x", "not a bucket name"),
        ("s3://a/x", "not a bucket name"),
        ("s3:///x", "not a bucket name"),
        ("s3://calls/x?versionId=1", "no ?query"),
        ("s3://calls/a/../b", "empty, . or .. part"),
        ("s3://calls/a//b", "empty, . or .. part"),
    ],
)
def test_bad_urls_say_what_to_write(text: str, says: str) -> None:
    with pytest.raises(RecordingsError, match=r".*") as caught:
        recordings_target(text, DEFAULT)
    assert says in str(caught.value)


def test_access_comes_from_flags_then_the_aws_variables() -> None:
    env = {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:8333",
        "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9000",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "key",
        "AWS_SECRET_ACCESS_KEY": "secret",
    }
    access = S3Access.from_environment(env)
    assert access == S3Access("http://127.0.0.1:9000", "eu-west-1", "key", "secret")
    assert "secret" not in repr(access)
    flagged = S3Access.from_environment(env, region="us-east-2", endpoint_url=None)
    assert flagged.region == "us-east-2"
    assert flagged.endpoint_url == "http://127.0.0.1:9000"
    assert S3Access.from_environment({}) == S3Access()


def test_access_refuses_half_credentials_and_odd_endpoints() -> None:
    with pytest.raises(RecordingsError, match="both AWS_ACCESS_KEY_ID and AWS_SECRET"):
        S3Access.from_environment({"AWS_ACCESS_KEY_ID": "key"})
    with pytest.raises(RecordingsError, match="http:// or https://"):
        S3Access.from_environment({"AWS_ENDPOINT_URL": "127.0.0.1:8333"})
