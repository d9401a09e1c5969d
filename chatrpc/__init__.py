"""chatrpc: real-time chat over gRPC bidirectional streaming."""

__version__ = "0.1.0"

#: The GRPC_EXPERIMENTS ``chatrpc-server`` runs with unless one is set: grpc core's
#: older TCP code (iomgr) instead of its EventEngine endpoints (see cli_server).
SERVER_GRPC_EXPERIMENTS = (
    "-event_engine_client,-event_engine_listener,-event_engine_for_all_other_endpoints"
)
