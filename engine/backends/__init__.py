"""Inference backends behind one protocol (base.py): llama.cpp (llama_cpp.py) and transformers (torch/)."""
