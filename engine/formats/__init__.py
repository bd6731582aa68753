"""Model files: the GGUF header reader, Hugging Face folder checks, the bundled demo model."""
