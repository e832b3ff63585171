"""Hypothesis: over any sequence of uploads, rollbacks, erasures and stale commits, the chain stays sound."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vault_testkit import FINGERPRINT, adapter_bytes, erase, make_schema, upload

from loravault.core import AbortedError, FailedPreconditionError, NotFoundError
from loravault.server.vault import Vault

STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("upload"), st.integers(0, 4)),  # seed: few seeds, so blobs get shared
        st.tuples(st.just("erase"), st.integers(0, 4)),
        st.tuples(st.just("rollback"), st.integers(1, 12)),
        st.tuples(st.just("stale"), st.integers(0, 4)),
    ),
    min_size=1,
    max_size=10,
)


def _apply(vault: Vault, step: tuple[str, int], head: int) -> None:
    action, value = step
    ref = {"tenant": "acme", "adapter": "support"}
    if action == "upload":
        upload(vault, **ref, data=adapter_bytes(value), parent=head)
    elif action == "erase":
        erase(vault, **ref, data=adapter_bytes(value), parent=head)
    elif action == "rollback":
        try:
            vault.adapters.rollback(**ref, to_version=value, parent_version=head)
        except (FailedPreconditionError, NotFoundError):
            pass  # refused targets are checked by the invariants below: nothing moved
    else:
        try:
            upload(vault, **ref, data=adapter_bytes(value), parent=head + 1)
        except AbortedError:
            pass


@settings(
    max_examples=20, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=STEPS)
def test_chain_invariants_hold_over_random_histories(tmp_path, steps):
    folder = Path(tempfile.mkdtemp(dir=tmp_path))  # a fresh vault per example, still under tmp_path
    try:
        with Vault.open(folder, base_fingerprint=FINGERPRINT) as vault:
            vault.credentials.create_tenant("acme")
            vault.adapters.create_adapter(tenant="acme", name="support", schema=make_schema())
            for step in steps:
                before = vault.adapters.get_adapter(tenant="acme", name="support")
                _apply(vault, step, before.head_version)
                after = vault.adapters.get_adapter(tenant="acme", name="support")
                _check(vault, before, after)
    finally:
        shutil.rmtree(folder)


def _check(vault: Vault, before, after) -> None:
    versions = vault.adapters.list_versions(tenant="acme", adapter="support")
    # versions only grow, by at most one per step, and number 1..head with parents chained
    assert after.head_version in (before.head_version, before.head_version + 1)
    assert [v.number for v in versions] == list(range(1, after.head_version + 1))
    assert all(v.parent == (v.number - 1 or None) for v in versions)
    # the floor never drops; exactly the versions below it are purged
    assert after.floor >= before.floor
    assert [v.purged for v in versions] == [v.number < after.floor for v in versions]
    # the head, when there is one, downloads and hashes right; fsck finds nothing wrong
    if versions:
        data = vault.adapters.read_version_blob(tenant="acme", adapter="support")
        assert hashlib.sha256(data).hexdigest() == versions[-1].blob_sha256
    assert vault.adapters.fsck().clean
