"""An S3-speaking HTTP server on 127.0.0.1 (moto's server mode) for the ``VIDEO_STORE`` tests.

The store under test talks real HTTP to it through boto3, exactly as to MinIO or AWS: nothing is
mocked inside the process's boto3. The fixture fails (never skips) when the server cannot start.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing-key",
    "AWS_SECRET_ACCESS_KEY": "testing-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class S3Server:
    """A running moto server: its URL, and a boto3 client to look inside buckets."""

    endpoint_url: str
    client: Any

    def new_bucket(self) -> str:
        name = f"videos-{uuid.uuid4().hex[:12]}"
        self.client.create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        listed = self.client.list_objects_v2(Bucket=bucket)
        return sorted(item["Key"] for item in listed.get("Contents", []))

    def read(self, uri: str) -> bytes:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's ThreadedMotoServer on a free local port for the whole session."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    try:
        server.start()
    except Exception as error:  # a fixture that cannot start must fail the tests, not skip them
        pytest.fail(f"the S3 test server (moto) did not start: {error}")
    url = f"http://127.0.0.1:{port}"
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
    )
    try:
        client.list_buckets()
    except Exception as error:
        server.stop()
        pytest.fail(f"the S3 test server (moto) at {url} does not answer: {error}")
    try:
        yield S3Server(url, client)
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The server, with the standard AWS credential variables set for the store's own client."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    return s3_server
