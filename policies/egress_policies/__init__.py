"""CrossGuard validators for governed egress."""
