"""Checkpoints (our safetensors format), official-pickle import, image files."""
