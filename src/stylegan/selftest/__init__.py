"""`stylegan selftest` and the official parity fixture it ships (data/, see data/README.md)."""
