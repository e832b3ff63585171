"""The server: gRPC servicers, auth, the vault, uploads, and `serve`."""

from .config import ServerConfig
from .main import serve
from .rpc.app import create_server
from .rpc.state import ServerState

__all__ = ["ServerConfig", "ServerState", "create_server", "serve"]
