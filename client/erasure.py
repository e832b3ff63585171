"""The tenant's erasure workflow in one call: hold the head, erase locally, sign, submit, check, keep the receipt.

    >>> base = load_base("smollm2-135m", attn_implementation="eager")  # doctest: +SKIP
    >>> eraser = eraser_for_head(client, "support", base=base, train=train, reference=never_trained)  # doctest: +SKIP
    >>> outcome = erase_samples(client, "support", eraser=eraser, base_fingerprint=base.fingerprint,
    ...                         forget_ids=["fact-17"], signers=[load_private_key("tenant.key")],
    ...                         receipts_dir=Path("receipts"))   # doctest: +SKIP

The `Eraser` is built once and passed in: each erasure moves it to the version it committed (`Eraser.advance`),
so a tenant erasing many times keeps its curvature in memory, without a cache folder.

Steps, in order (DESIGN.md, Erasure protocol): `hold_head` (download and verify the head, and check the eraser
holds exactly that adapter), the eraser's delta on this machine, `build_manifest` and sign it, submit envelope
and delta, check the receipt (server signature, same request, same result hash), `confirm_head` (download the
new head and compare its hash), advance the eraser, measure the forget set's loss before and after, and
`store_receipt` (with the salt and the sample ids, which never leave this machine, so the tenant can later prove
which samples a receipt covers).
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
from loravault.core.errors import DataLossError, FailedPreconditionError, InvalidArgumentError
from loravault.core.lora import add_delta
from loravault.core.peft_format import peft_model_with_adapter
from loravault.eraser import Eraser, EraserConfig, ErasureReport, ErasureRequest, lora_objective, token_losses
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

__all__ = ["ErasureOutcome", "erase_samples", "eraser_for_head", "forget_loss"]

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


def eraser_for_head(
    client: VaultClient,
    adapter: str,
    *,
    base: BaseModel,
    train: Sequence[Sample],
    reference: Sequence[Sample] = (),
    config: EraserConfig = EraserConfig(),
    cache_dir: Path | None = None,
    tenant: str = "",
) -> Eraser:
    """An eraser over the adapter's head as downloaded (and verified), on a copy of `base`, which is never modified.

    `train` is the training set the head was trained on; `reference`, never-trained samples of the same kind
    (for the calibrated step); `cache_dir` keeps EK-FAC factors between processes. The base must be loaded with
    attn_implementation="eager" for the default solver's measured residual.
    """
    info, _, tensors = hold_head(client, adapter, tenant=tenant)
    model = peft_model_with_adapter(copy.deepcopy(base.model), info.schema, tensors)
    return Eraser.for_peft_model(model, base.tokenizer, train=train, reference=reference, config=config,
                                 cache_dir=cache_dir)


def erase_samples(
    client: VaultClient,
    adapter: str,
    *,
    eraser: Eraser,
    base_fingerprint: str,
    forget_ids: Sequence[str],
    signers: Sequence[Signer],
    receipts_dir: Path,
    server_key: dict[str, Any] | None = None,
    tenant: str = "",
) -> ErasureOutcome:
    """Erase `forget_ids` from the adapter's head with `eraser`; see the module docstring for the steps.

    `eraser` must hold the head (built by `eraser_for_head`, or advanced by the previous erasure); once the new
    head is confirmed it is advanced to it. `base_fingerprint` is the fingerprint of the base the eraser runs on.
    `server_key` pins the server's receipt key (fetched when None).
    Raises FailedPreconditionError when the eraser holds another adapter than the head, InvalidArgumentError
    for forget ids outside its training set (both before anything is sent), the SDK's errors for refusals (the
    server changes nothing then), DataLossError when the new head does not hash to the signed result, and
    loravault.proto errors when the receipt does not verify.
    """
    info, head, tensors = hold_head(client, adapter, tenant=tenant)
    _check_eraser_holds(eraser, tensors, head=head, adapter=adapter)
    forget = _forget_samples(eraser.train, forget_ids)
    before = eraser.mean_loss(forget)
    request = ErasureRequest.of(removals=forget)
    result = eraser.erase(request)
    merged = add_delta(info.schema, tensors, result.delta)
    salt = new_salt()
    manifest = build_manifest(info, head, delta=result.delta, merged=merged, report=result.report,
                              forget_ids=forget_ids, salt=salt, signers=signers, base_fingerprint=base_fingerprint)
    answer = client.submit_erasure(adapter, envelope=sign_manifest(manifest, signers=signers),
                                   delta=encode_tensors(result.delta), tenant=tenant)
    receipt = verify_receipt(answer.envelope, server_key=server_key or client.server_key(), manifest=manifest)
    version = confirm_head(client, adapter, manifest, tenant=tenant)
    eraser.advance(request, merged)
    after = eraser.mean_loss(forget)
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


def _check_eraser_holds(eraser: Eraser, tensors: dict[str, torch.Tensor], *, head: VersionInfo, adapter: str) -> None:
    """The eraser's adapter is the head's, to the float32 bit: a delta computed on anything else is refused."""
    held, found = eraser.adapter_hash(), sha256_hex(canonical_float32(tensors))
    if held != found:
        raise FailedPreconditionError(
            f"adapter {adapter} v{head.number}: the eraser holds an adapter with float32 hash {held[:12]}…, the head "
            f"is {found[:12]}…: build the eraser over the head (eraser_for_head)")


def _forget_samples(by_id: dict[str, Sample], forget_ids: Sequence[str]) -> list[Sample]:
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
