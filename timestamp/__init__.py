"""timestamp: the RFC 3161 / GM/T 0033 trusted-time service."""
