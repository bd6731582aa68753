"""The transformers backend (backend.py) and its CUDA fast decode path (fast/)."""
