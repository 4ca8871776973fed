"""Live updates over websockets: wire format, publishing hub, consumers (docs/websockets.md)."""
