"""chatrpc: real-time chat over gRPC bidirectional streaming."""

__version__ = "0.1.0"
