"""The gRPC edge of the server: auth, error translation, servicers and the server factory."""
