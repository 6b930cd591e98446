"""The network family every stage shares: search space, super-network, sub-networks, checkpoints."""
