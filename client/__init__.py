"""The tenant side: the SDK (VaultClient), the CLI, local training and the erasure workflow."""

from .health import check_health
from .records import AdapterInfo, FsckResult, Identity, IssuedToken, KeyInfo, VersionInfo
from .sdk import VaultClient

__all__ = ["AdapterInfo", "FsckResult", "Identity", "IssuedToken", "KeyInfo", "VaultClient", "VersionInfo", "check_health"]
