"""The Tenants service: who am I, tokens, and the Ed25519 keys that sign a tenant's erasures (and their rotation)."""

from __future__ import annotations

import json
import time

from loravault.core.errors import InvalidArgumentError
from loravault.proto import loravault_pb2 as pb
from loravault.proto import loravault_pb2_grpc as pb_grpc
from loravault.proto.manifest import DEFAULT_CLOCK_SKEW_SECONDS
from loravault.proto.untrusted_json import parse_json

from ..erasure.key_changes import KeyChanges
from ..erasure.rotation import rotate_keys
from ..vault import KeyRecord
from .auth import PrincipalContext, is_admin, tenant_scope
from .convert import unix_ms
from .edge import unary
from .state import ServerState

__all__ = ["TenantsService"]

_MAX_KEY_JSON = 4096


class TenantsService(pb_grpc.TenantsServicer):
    def __init__(self, state: ServerState) -> None:
        self._state = state
        self._keys = KeyChanges(vault=state.vault, audit=state.erasure.audit if state.erasure else None)

    @unary
    def WhoAmI(self, request: pb.WhoAmIRequest, context: PrincipalContext) -> pb.WhoAmIResponse:
        principal = context.principal
        return pb.WhoAmIResponse(
            role=principal.role,
            tenant=principal.tenant or "",
            base_name=self._state.base.name,
            base_fingerprint=self._state.base.fingerprint,
            max_chunk_bytes=self._state.max_chunk_bytes,
        )

    @unary
    def IssueToken(self, request: pb.IssueTokenRequest, context: PrincipalContext) -> pb.IssueTokenResponse:
        tenant = tenant_scope(context.principal, request.tenant)
        issued = self._state.vault.credentials.issue_token(role="tenant", tenant=tenant, label=request.label)
        return pb.IssueTokenResponse(token_id=issued.token_id, token=issued.secret)

    @unary
    def RevokeToken(self, request: pb.RevokeTokenRequest, context: PrincipalContext) -> pb.RevokeTokenResponse:
        tenant = tenant_scope(context.principal, request.tenant)
        self._state.vault.credentials.revoke_token(request.token_id, tenant=tenant)
        return pb.RevokeTokenResponse()

    @unary
    def ListTokens(self, request: pb.ListTokensRequest, context: PrincipalContext) -> pb.ListTokensResponse:
        tenant = tenant_scope(context.principal, request.tenant)
        return pb.ListTokensResponse(
            tokens=[
                pb.TokenInfo(token_id=t.token_id, role=t.role, tenant=t.tenant or "", label=t.label,
                             created_unix_ms=unix_ms(t.created_at), revoked=t.revoked)
                for t in self._state.vault.credentials.list_tokens(tenant=tenant)
            ]
        )

    @unary
    def AddKey(self, request: pb.AddKeyRequest, context: PrincipalContext) -> pb.SigningKey:
        tenant = tenant_scope(context.principal, request.tenant)
        keyid = self._keys.add_key(tenant=tenant, public_key=_parse_key(request.public_key_json),
                                   by_admin=is_admin(context.principal))
        return self._key_message(tenant, keyid)

    @unary
    def ListKeys(self, request: pb.ListKeysRequest, context: PrincipalContext) -> pb.ListKeysResponse:
        tenant = tenant_scope(context.principal, request.tenant)
        return self._keys_message(tenant)

    @unary
    def RevokeKey(self, request: pb.RevokeKeyRequest, context: PrincipalContext) -> pb.SigningKey:
        tenant = tenant_scope(context.principal, request.tenant)
        self._keys.revoke_key(tenant=tenant, keyid=request.keyid, by_admin=is_admin(context.principal))
        return self._key_message(tenant, request.keyid)

    @unary
    def SetThreshold(self, request: pb.SetThresholdRequest, context: PrincipalContext) -> pb.ListKeysResponse:
        tenant = tenant_scope(context.principal, request.tenant)
        self._keys.set_threshold(tenant=tenant, threshold=request.threshold, by_admin=is_admin(context.principal))
        return self._keys_message(tenant)

    @unary
    def RotateKeys(self, request: pb.RotateKeysRequest, context: PrincipalContext) -> pb.ListKeysResponse:
        tenant = tenant_scope(context.principal, request.tenant)
        rotate_keys(request.envelope, tenant=tenant, vault=self._state.vault, now=time.time(),
                    clock_skew=DEFAULT_CLOCK_SKEW_SECONDS)
        return self._keys_message(tenant)

    def _keys_message(self, tenant: str) -> pb.ListKeysResponse:
        policy = self._state.vault.credentials.signing_policy(tenant=tenant)
        return pb.ListKeysResponse(keys=[_key_to_pb(k) for k in policy.keys], threshold=policy.threshold)

    def _key_message(self, tenant: str, keyid: str) -> pb.SigningKey:
        for key in self._state.vault.credentials.list_keys(tenant=tenant):
            if key.keyid == keyid:
                return _key_to_pb(key)
        raise InvalidArgumentError(f"key {keyid} was not stored for tenant {tenant}")


def _key_to_pb(key: KeyRecord) -> pb.SigningKey:
    return pb.SigningKey(
        keyid=key.keyid, public_key_json=json.dumps(key.public_key, sort_keys=True), status=key.status
    )


def _parse_key(text: str) -> dict:
    key = parse_json(text, what="public key", max_bytes=_MAX_KEY_JSON)
    if not isinstance(key, dict):
        raise InvalidArgumentError("public key JSON must be an object (securesystemslib key form)")
    return key
