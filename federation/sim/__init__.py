"""The site simulator's implementation; import the public names from ``federation.simulator``."""
