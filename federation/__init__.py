"""The Flower apps of a loravault federation: the ServerApp (coordinator) and its strategy, the ClientApp,
the task they share, and the coordinator's signed round commits to the vault through the SDK.

Only this part imports flwr. The apps live in server_app.py, client_app.py and task.py (Flower's layout);
importing this package does not import flwr or torch models, so `from loravault.federation import RunConfig`
stays cheap.
"""

from .provenance import CommittedRound, commit_round, update_hash

__all__ = ["CommittedRound", "commit_round", "update_hash"]
