"""kms: the key-management centre — GM/T 0034 encryption-key escrow, GM/T 0014 CA<->KMC messages,
M-of-N recovery, KEK rotation and disaster-recovery export.

Entry points: ``kms.escrow.KeyEscrow`` (the domain), ``kms.endpoint.Gmt0014Endpoint`` (GM/T 0014 server side),
``gmt0014.client.KmcClient`` (what a CA calls), ``kms.recovery.ApprovalBook`` (the only producer of
``RecoveryAuthorisation``/``DestructionAuthorisation``/``ExportAuthorisation``).
"""
