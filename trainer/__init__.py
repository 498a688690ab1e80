"""Fine-tunes judges toward human label distributions (see trainer/README)."""
