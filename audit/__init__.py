"""The audit log: events, the hash chain, signed checkpoints, verification and export."""
