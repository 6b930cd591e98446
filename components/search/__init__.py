"""Hardware-aware architecture search: measured latency tables and NetAdaptV2's multi-layer
coordinate descent over the super-network, with the uniform, random and NetAdapt v1 baselines."""
