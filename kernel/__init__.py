"""The shared kernel: small pieces every package may import and that import no package."""
