"""seal: GB/T 38540 electronic seals, PDF and OFD sealing, verification (issue 6)."""
