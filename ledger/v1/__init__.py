"""Generated protobuf and gRPC modules for package ledger.v1 (do not edit)."""
