"""The tenant side: the SDK (VaultClient), the CLI, local training and the erasure workflow."""

from .records import AdapterInfo, FsckResult, Identity, IssuedToken, KeyInfo, VersionInfo
from .sdk import VaultClient

__all__ = ["AdapterInfo", "FsckResult", "Identity", "IssuedToken", "KeyInfo", "VaultClient", "VersionInfo"]
