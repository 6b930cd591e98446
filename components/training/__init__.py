"""Lightning training of the super-network or of one fixed network on the server pool."""
