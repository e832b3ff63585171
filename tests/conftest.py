"""Fixtures every part's tests share: the metadata database (SQLite, or PostgreSQL on a throwaway cluster) and
an S3-compatible endpoint (moto's standalone server on 127.0.0.1), so the same tests run on each backend."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from loravault.bench.pgcluster import TEMPLATE, PgCluster

DATABASES = ("sqlite", "postgresql")
BLOB_BACKENDS = ("files", "s3")
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A PostgreSQL 15 cluster for the whole session, with a template database the migrations ran on."""
    from loravault.server.vault.database import open_engine, upgrade

    cluster = PgCluster()
    try:
        cluster.start()
        with cluster.admin() as conn:
            conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
        engine = open_engine(cluster.url(TEMPLATE))
        upgrade(engine)
        engine.dispose()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> Iterator[str]:
    """The URL of a fresh, migrated PostgreSQL database of this test's own (dropped afterwards)."""
    name = pg_cluster.create_database()
    yield pg_cluster.url(name)
    pg_cluster.drop_database(name)


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest) -> str | None:
    """Each metadata test runs twice: None (the vault's SQLite file) and a PostgreSQL database."""
    if request.param == "sqlite":
        return None
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 (a real HTTP endpoint) for the session; test credentials in the env."""
    from moto.server import ThreadedMotoServer

    for name, value in S3_ENV.items():
        os.environ.setdefault(name, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    """A new empty bucket; its blob location `s3://<bucket>/vault`."""
    import boto3

    bucket = f"test-{secrets.token_hex(6)}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/vault"


@pytest.fixture(params=BLOB_BACKENDS)
def blob_location(request: pytest.FixtureRequest) -> tuple[str | None, str | None]:
    """(blobs, s3_endpoint) for Vault.open: files in the data folder, or a fresh bucket."""
    if request.param == "files":
        return None, None
    return str(request.getfixturevalue("s3_bucket")), str(request.getfixturevalue("s3_endpoint"))
