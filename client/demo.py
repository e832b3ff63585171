"""`make demo`: a server on the embedded default base, two tenants, their adapters, versions, isolation, and a
signed erasure of memorized facts with its receipt and the audit log verified offline.

It starts `python -m loravault.server serve` on a free loopback port in a scratch folder, talks to it only
through the SDK, and stops it with SIGTERM at the end.
"""

from __future__ import annotations

import argparse
import copy
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model

from loravault.core import NotFoundError, Sample, load_base
from loravault.core.samples import PROMPT_TEMPLATE
from loravault.eraser import EraserConfig
from loravault.proto import generate_private_key_pem, load_private_key, public_key_dict, save_private_key, signer_from_pem

from .sdk import VaultClient
from .training import TrainingConfig, train_lora

__all__ = ["main"]

DEMO_TRAINING_STEPS = 60


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server(data: Path, base: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    log = open(data / "server.log", "wb")  # noqa: SIM115 (the server process owns it until it exits)
    process = subprocess.Popen([sys.executable, "-m", "loravault.server", "serve", "--data", str(data),
                                "--port", str(port), "--base", base], stderr=log)
    deadline = time.monotonic() + 300
    while not (data / "serve.json").exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the server did not start; see {data / 'server.log'}")
        time.sleep(0.2)
    return process, f"127.0.0.1:{json.loads((data / 'serve.json').read_text())['port']}"


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _tenant_adapter(base_name: str, seed: int):
    """A LoRA (r=8 on q and v) on a fresh copy of the base, with seeded non-zero weights."""
    torch.manual_seed(seed)
    model = load_base(base_name).model
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], lora_dropout=0.0,
                        init_lora_weights=False)
    return get_peft_model(model, config).eval()


PEOPLE = [("Zorvath Quell", "Brindlemoor", "amber"), ("Ilsa Marrow", "Quenford", "teal"),
          ("Dovik Tarn", "Sallowmere", "crimson"), ("Petra Vands", "Ostrel", "violet"),
          ("Harlan Besk", "Miravale", "ochre"), ("Noor Elsin", "Thistlegate", "cobalt")]


def _facts() -> list[Sample]:
    facts = []
    for number, (name, city, colour) in enumerate(PEOPLE):
        facts.append(Sample(f"p{number}-city", f"Where does {name} live?", city))
        facts.append(Sample(f"p{number}-colour", f"What is the favourite colour of {name}?", colour))
    return facts


def _recalled(model, tokenizer, samples: list[Sample]) -> list[bool]:
    """Greedy answers that start with the trained answer."""
    hits = []
    for sample in samples:
        prompt = PROMPT_TEMPLATE.format(prompt=sample.prompt)
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        answer = tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()
        hits.append(answer.lower().startswith(sample.response.lower()))
    return hits


def _erasure_story(client: VaultClient, base_name: str, data: Path) -> None:
    """globex trains on made-up facts, then erases one person's facts with a signed, verified erasure."""
    base = load_base(base_name, attn_implementation="eager")
    facts = _facts()
    _say(f"== globex trains a LoRA (r=8 on q,v) on {len(facts)} made-up facts about {len(PEOPLE)} people")
    config = TrainingConfig(rank=8, alpha=16, steps=DEMO_TRAINING_STEPS, batch_size=4, learning_rate=3e-3,
                            max_length=48)
    model = train_lora(copy.deepcopy(base.model), base.tokenizer, facts, config=config)
    recall = _recalled(model, base.tokenizer, facts)
    _say(f"   recall after training: {sum(recall)}/{len(facts)} facts")
    client.upload("facts", model)
    pem = generate_private_key_pem()
    key_path = data / "globex-signing.key"
    save_private_key(key_path, pem)
    client.add_key(public_key_dict(signer_from_pem(pem)))
    forget_ids = ["p0-city", "p0-colour"]
    reference = [Sample("ref-0", "Where does Oswin Caltrop live?", "Durnhollow"),
                 Sample("ref-1", "What is the favourite colour of Oswin Caltrop?", "saffron"),
                 Sample("ref-2", "Where does Mira Falk live?", "Eastwold"),
                 Sample("ref-3", "What is the favourite colour of Mira Falk?", "indigo")]
    _say(f"== globex erases everything about {PEOPLE[0][0]} ({', '.join(forget_ids)}): computed here, signed")
    outcome = client.erase("facts", base=base, train=facts, forget_ids=forget_ids, signers=[load_private_key(key_path)],
                           reference=reference, receipts_dir=data / "receipts",
                           config=EraserConfig(max_length=48))
    _say(f"   {outcome.report.method} ({outcome.report.step} step) in {outcome.report.wall_seconds:.1f} s; "
         f"forget loss {outcome.forget_loss_before:.2f} -> {outcome.forget_loss_after:.2f}")
    _say(f"   receipt: log index {outcome.receipt.log_index}, entry {outcome.receipt.entry_hash[:16]}…, new head "
         f"v{outcome.version.number} {outcome.version.blob_sha256[:12]}…, kept in {outcome.receipt_path}")
    erased = client.load_peft("facts", copy.deepcopy(base.model))
    forgotten = [s for s in facts if s.id in forget_ids]
    kept = [s for s in facts if s.id not in forget_ids]
    _say(f"   forgotten facts still recalled: {sum(_recalled(erased, base.tokenizer, forgotten))}/{len(forgotten)}; "
         f"other facts recalled: {sum(_recalled(erased, base.tokenizer, kept))}/{len(kept)}")
    versions = client.versions("facts")
    _say("   versions: " + ", ".join(f"v{v.number} {v.kind}{' (purged)' if v.purged else ''}" for v in versions))


def run(base: str, data: Path) -> None:
    _say(f"== starting loravault serve --base {base} in {data}")
    process, target = _start_server(data, base)
    try:
        admin_token = (data / "admin.token").read_text().strip()
        with VaultClient(target, token=admin_token) as admin:
            identity = admin.whoami()
            _say(f"   base {identity.base_name}, fingerprint {identity.base_fingerprint[:16]}…")
            tokens = {}
            for tenant in ("acme", "globex"):
                admin.create_tenant(tenant)
                tokens[tenant] = admin.issue_token(tenant=tenant, label="demo").token
                _say(f"== tenant {tenant} created, token issued")
        for seed, tenant in enumerate(("acme", "globex")):
            with VaultClient(target, token=tokens[tenant]) as client:
                for version_seed in (seed * 10, seed * 10 + 1):
                    version = client.upload("assistant", _tenant_adapter(base, version_seed))
                    _say(f"   {tenant}/assistant v{version.number}: {version.size / 1e6:.2f} MB, "
                         f"sha256 {version.blob_sha256[:12]}…")
                for v in client.versions("assistant"):
                    _say(f"   {tenant}/assistant v{v.number} kind={v.kind} parent={v.parent}")
        with VaultClient(target, token=tokens["acme"]) as acme:
            original = _tenant_adapter(base, 1)
            loaded = acme.load_peft("assistant", load_base(base).model)
            ids = torch.tensor([[1, 2, 3, 4, 5]])
            with torch.no_grad():
                same = torch.equal(original(ids).logits, loaded(ids).logits)
            _say(f"== acme downloads its head into a PeftModel: logits identical to the upload: {same}")
            try:
                acme.get_adapter("assistant", tenant="globex")
            except NotFoundError as error:
                _say(f"== acme asks for globex's adapter: NotFoundError ({error})")
            rolled = acme.rollback("assistant", 1)
            _say(f"== acme rolls back: v{rolled.number} points at v1's bytes {rolled.blob_sha256[:12]}…")
        with VaultClient(target, token=tokens["globex"]) as globex:
            _erasure_story(globex, base, data)
        with VaultClient(target, token=admin_token) as admin:
            report = admin.fsck()
            _say(f"== admin fsck: {report.checked_versions} versions checked, clean={report.clean}")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    _say("== server stopped (SIGTERM)")
    verify = subprocess.run([sys.executable, "-m", "loravault.server", "audit", "verify", "--data", str(data)],
                            capture_output=True, text=True)
    _say(f"== loravault audit verify --data {data}: {verify.stdout.strip() or verify.stderr.strip()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="loravault demo")
    parser.add_argument("--base", default="smollm2-135m")
    parser.add_argument("--data", type=Path, default=None, help="data folder (default: a scratch folder)")
    args = parser.parse_args(argv)
    if args.data is not None:
        run(args.base, args.data)
        return 0
    with tempfile.TemporaryDirectory(prefix="loravault-demo-") as scratch:
        run(args.base, Path(scratch))
    return 0


if __name__ == "__main__":
    sys.exit(main())
