"""NetAdaptV2 super-network: ordered dropout (ODO) and channel-level bypass connections (CBC)."""
