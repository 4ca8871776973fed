"""Server-rendered portal views, one module per area."""
