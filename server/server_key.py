"""The server's own Ed25519 key: created on first start in the data folder (mode 0600), loaded after that; or,
for a deployment of several replicas, one key file every replica is given (`serve --server-key`, e.g. from a
Kubernetes Secret), so a receipt verifies whichever replica signed it.

It signs erasure receipts and audit-log checkpoints. Beside the private key the server writes its public key
in securesystemslib form, so an auditor can verify a log offline without reading the private key.

    >>> signer = load_or_create_server_key(data_dir)
    >>> read_server_public_key(data_dir)["keyval"]["public"] == signer.public_key.keyval["public"]
    True
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from securesystemslib.signer import CryptoSigner

from loravault.core.errors import DataLossError, NotFoundError
from loravault.proto.keys import (
    generate_private_key_pem,
    load_private_key,
    public_key_dict,
    public_key_from_dict,
    save_private_key,
)

from .vault.durable import write_file_durably

__all__ = ["SERVER_KEY_FILE", "SERVER_PUBLIC_KEY_FILE", "load_or_create_server_key", "read_server_public_key"]

logger = logging.getLogger(__name__)

SERVER_KEY_FILE = "server_ed25519.pem"
SERVER_PUBLIC_KEY_FILE = "server_ed25519.pub.json"


def load_or_create_server_key(data_dir: Path, *, key_file: Path | None = None) -> CryptoSigner:
    """The server's signer: from `key_file` when given (never created: NotFoundError when missing), else
    loaded from `data_dir`, or generated there (0600, durably) on first start. The public key file is written
    beside the data either way, for `loravault audit verify`.

    Raises PermissionError when the key file is readable by others (chmod 600 it), MalformedKeyError when it
    is not an Ed25519 key, DataLossError when the public key file names another key.
    """
    if key_file is not None:
        path = Path(key_file).resolve()  # a Secret volume links its files: load the file the link names
        if not path.is_file():
            raise NotFoundError(
                f"server key file {key_file} does not exist; make one with `loravault keys generate PATH`")
    else:
        path = Path(data_dir) / SERVER_KEY_FILE
        if not path.exists():
            save_private_key(path, generate_private_key_pem())
            logger.info("generated the server signing key %s", path)
    signer = load_private_key(path)
    public_path = Path(data_dir) / SERVER_PUBLIC_KEY_FILE
    public = public_key_dict(signer)
    if not public_path.exists():
        write_file_durably(public_path, json.dumps(public, sort_keys=True).encode() + b"\n", mode=0o644)
    elif read_server_public_key(data_dir) != public:
        raise DataLossError(f"{public_path} does not hold the public half of {path}; restore the matching pair")
    return signer


def read_server_public_key(data_dir: Path) -> dict[str, Any]:
    """The server's public key dict from `data_dir` (validated: Ed25519, key id = its hash)."""
    path = Path(data_dir) / SERVER_PUBLIC_KEY_FILE
    if not path.is_file():
        raise NotFoundError(f"{path} does not exist: the server never started on this data folder")
    data = json.loads(path.read_text())
    public_key_from_dict(data)
    return dict(data)
