"""The server side of federation rounds: a coordinator's signed round manifest and aggregate, verified with the
erasure pipeline's steps and committed as a version of kind federation-round (see pipeline.py)."""

from .pipeline import RoundHeader, RoundPipeline, RoundResult

__all__ = ["RoundHeader", "RoundPipeline", "RoundResult"]
