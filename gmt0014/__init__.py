"""GM/T 0014 CA <-> KMC protocol: the message codec (``gmt0014.messages``), the CA-side client and its
transports (``gmt0014.client``) and the protocol's errors (``gmt0014.errors``).

Shared by both ends: the CA (``ca_bridge.kmc_link``) sends CARequests through ``KmcClient``; the KMC
(``kms.endpoint``) parses them and answers KMRespond with the same codec. Depends on ``pkicore`` only.
"""
