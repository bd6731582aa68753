"""Text-level pieces of generation, shared by local backends and remote servers."""
