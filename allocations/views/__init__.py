"""Portal pages of the allocation workflow (one module per area)."""
