"""The package version, in its own module so that any layer may read it without importing up."""
__version__ = "0.1.0"
