"""The gRPC edge: servicers, error mapping and server wiring."""
