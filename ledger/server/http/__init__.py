"""The HTTP port: CAMARA routes, Connect unary calls and the OpenAPI document, on the gRPC edge's loop."""
