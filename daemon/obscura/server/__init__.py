"""The daemon: gRPC server, data plane, security and lifecycle."""
