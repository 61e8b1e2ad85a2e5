"""kms: the key-management centre for encryption certificates, GM/T 0034 escrow (issue 4)."""
