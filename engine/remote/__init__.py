"""An engine for OpenAI-compatible servers (vLLM, SGLang, NIM); their text goes through engine.generate's
event builder like a local backend's."""
