"""The tenant's erasure workflow in one call: hold the head, erase locally, sign, submit, check, keep the receipt.

    >>> outcome = erase_samples(client, "support", base=load_base("smollm2-135m"), train=train,
    ...                         forget_ids=["fact-17"], signers=[load_private_key("tenant.key")],
    ...                         reference=never_trained, receipts_dir=Path("receipts"))   # doctest: +SKIP

Steps, in order (DESIGN.md, Erasure protocol): `hold_head` (download and verify the head), `compute_delta` (the
eraser on this machine, reusing cached curvature), `build_manifest` and sign it, submit envelope and delta,
`check_receipt` (server signature, same request, same result hash), `confirm_head` (download the new head and
compare its hash), measure the forget set's loss before and after, and `store_receipt` (with the salt and the
sample ids, which never leave this machine, so the tenant can later prove which samples a receipt covers).
"""

from __future__ import annotations

import base64
import copy
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from securesystemslib.signer import Signer

from loravault.core import BaseModel, Sample, canonical_float32, encode_tensors, sha256_hex
from loravault.core.errors import DataLossError, InvalidArgumentError
from loravault.core.lora import add_delta
from loravault.core.peft_format import peft_model_with_adapter
from loravault.eraser import Eraser, EraserConfig, ErasureReport, ErasureRequest, apply_delta, lora_objective, token_losses
from loravault.proto import (
    ErasureManifest,
    ErasureMethod,
    ForgetSet,
    Receipt,
    ValidityWindow,
    commit,
    key_id,
    new_request_id,
    new_salt,
    public_key_dict,
    sign_manifest,
    verify_receipt,
)

from .records import AdapterInfo, VersionInfo
from .sdk import VaultClient

__all__ = ["ErasureOutcome", "erase_samples", "forget_loss"]

VALIDITY_SECONDS = 3600


@dataclass(frozen=True)
class ErasureOutcome:
    """What one erasure did, as the tenant sees and keeps it."""

    receipt: Receipt
    version: VersionInfo  # the new head the server committed
    manifest: ErasureManifest
    report: ErasureReport
    forget_loss_before: float  # mean token NLL of the forgotten samples' answers, on this machine
    forget_loss_after: float
    receipt_path: Path


def erase_samples(
    client: VaultClient,
    adapter: str,
    *,
    base: BaseModel,
    train: Sequence[Sample],
    forget_ids: Sequence[str],
    signers: Sequence[Signer],
    reference: Sequence[Sample] = (),
    config: EraserConfig = EraserConfig(),
    cache_dir: Path | None = None,
    receipts_dir: Path,
    server_key: dict[str, Any] | None = None,
    tenant: str = "",
) -> ErasureOutcome:
    """Erase `forget_ids` from the adapter's head; see the module docstring for the steps.

    `base` is copied, never modified. `server_key` pins the server's receipt key (fetched when None).
    Raises the SDK's errors for refusals (the server changes nothing then), DataLossError when the new head
    does not hash to the signed result, and loravault.proto errors when the receipt does not verify.
    """
    info, head, tensors = hold_head(client, adapter, tenant=tenant)
    forget = _forget_samples(train, forget_ids)
    model = peft_model_with_adapter(copy.deepcopy(base.model), info.schema, tensors)
    before = forget_loss(model, base.tokenizer, forget, max_length=config.max_length)
    eraser = Eraser.for_peft_model(model, base.tokenizer, train=train, reference=reference, config=config,
                                   cache_dir=cache_dir)
    result = eraser.erase(ErasureRequest.of(removals=forget))
    merged = add_delta(info.schema, tensors, result.delta)
    salt = new_salt()
    manifest = build_manifest(info, head, delta=result.delta, merged=merged, report=result.report,
                              forget_ids=forget_ids, salt=salt, signers=signers, base_fingerprint=base.fingerprint)
    answer = client.submit_erasure(adapter, envelope=sign_manifest(manifest, signers=signers),
                                   delta=encode_tensors(result.delta), tenant=tenant)
    receipt = verify_receipt(answer.envelope, server_key=server_key or client.server_key(), manifest=manifest)
    version = confirm_head(client, adapter, manifest, tenant=tenant)
    apply_delta(model, result.delta)
    after = forget_loss(model, base.tokenizer, forget, max_length=config.max_length)
    path = store_receipt(receipts_dir, manifest, envelope=answer.envelope, salt=salt, forget_ids=forget_ids)
    return ErasureOutcome(receipt, version, manifest, result.report, before, after, path)


def hold_head(client: VaultClient, adapter: str, *, tenant: str = "") -> tuple[AdapterInfo, VersionInfo, dict]:
    """The adapter's head version and its tensors, verified against the head's digest by the SDK."""
    return client.download_tensors(adapter, tenant=tenant)


def build_manifest(
    info: AdapterInfo,
    head: VersionInfo,
    *,
    delta: dict[str, torch.Tensor],
    merged: dict[str, torch.Tensor],
    report: ErasureReport,
    forget_ids: Sequence[str],
    salt: bytes,
    signers: Sequence[Signer],
    base_fingerprint: str,
) -> ErasureManifest:
    """Every field DESIGN.md names, bound to the head this delta was computed on."""
    now = int(time.time())
    commitment = commit(list(forget_ids), salt=salt)
    return ErasureManifest(
        tenant=info.tenant, adapter=info.name,
        key_ids=tuple(sorted({key_id(public_key_dict(s)) for s in signers})),
        request_id=new_request_id(), base_fingerprint=base_fingerprint,
        parent_version=head.number, parent_hash=head.blob_sha256, new_version=head.number + 1,
        delta_hash=sha256_hex(encode_tensors(delta)), result_hash=sha256_hex(canonical_float32(merged)),
        forget=ForgetSet(commitment=commitment.root, count=commitment.count, train_size_before=report.size_before,
                         train_size_after=report.size_after),
        method=ErasureMethod(solver=report.method, curvature=report.curvature, damping=float(report.damping),
                             iterations=int(report.iterations), residual=_residual(report)),
        window=ValidityWindow(issued_at=now, expires_at=now + VALIDITY_SECONDS),
    )


def confirm_head(client: VaultClient, adapter: str, manifest: ErasureManifest, *, tenant: str = "") -> VersionInfo:
    """Download the new head and check it is exactly the merged adapter the manifest signed."""
    _, head, tensors = client.download_tensors(adapter, tenant=tenant)
    found = sha256_hex(canonical_float32(tensors))
    if head.number != manifest.new_version or found != manifest.result_hash:
        raise DataLossError(
            f"{manifest.label}: head is v{head.number} with float32 hash {found[:12]}…, the signed result is "
            f"v{manifest.new_version} {manifest.result_hash[:12]}…"
        )
    return head


def store_receipt(
    folder: Path, manifest: ErasureManifest, *, envelope: bytes, salt: bytes, forget_ids: Sequence[str]
) -> Path:
    """Keep the receipt with the salt and sample ids (this machine only, mode 0600): the proof material."""
    target = folder / manifest.tenant / manifest.adapter
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"{manifest.request_id}.json"
    record = {"receipt_envelope": base64.b64encode(envelope).decode(), "manifest": manifest.to_statement().to_dict(),
              "salt": salt.hex(), "forget_ids": sorted(forget_ids)}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(record, handle, indent=2, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    return path


@torch.no_grad()
def forget_loss(model: torch.nn.Module, tokenizer: Any, samples: Sequence[Sample], *, max_length: int = 128) -> float:
    """Mean over `samples` of the training loss (mean token NLL of the answer), rendered as the eraser does."""
    device = next(model.parameters()).device
    batch = lora_objective(model, tokenizer, max_length=max_length, device=device).render(samples)
    logits = model(**{k: v.to(device) for k, v in batch.inputs.items()}).logits
    return float(token_losses(logits, batch.targets.to(device)).mean())


def _forget_samples(train: Sequence[Sample], forget_ids: Sequence[str]) -> list[Sample]:
    by_id = {s.id: s for s in train}
    unknown = [i for i in forget_ids if i not in by_id]
    if not forget_ids or unknown:
        raise InvalidArgumentError(
            f"forget ids must name training samples: {len(unknown)} of {len(forget_ids)} are not in the training set"
            + (f" (first: {unknown[0]!r})" if unknown else ""))
    return [by_id[i] for i in forget_ids]


def _residual(report: ErasureReport) -> float:
    """The solve's measured relative residual; a method that measures none is refused, not signed as 0."""
    if report.residual != report.residual:  # NaN
        raise InvalidArgumentError(
            f"eraser method {report.method} reported no residual: load the base with attn_implementation='eager' so "
            "the solve is measured before it is signed")
    return float(report.residual)
