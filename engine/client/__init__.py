"""The app side of the engine: the EngineClient that runs the worker process and speaks to it."""

from engine.client.engine_client import EngineClient, describe_exit

__all__ = ["EngineClient", "describe_exit"]
