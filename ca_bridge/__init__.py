"""The certificate authority (CA half of GM/T 0034 / GM/T 0015): SM2 hierarchy in the HSM, certificates
from data profiles, CRLs (RFC 5280 §5), OCSP (RFC 6960) and ``ca_bridge.embedded.EmbeddedCA`` behind the
narrow ``ca_bridge.api.CABackend`` interface.

Import what you use from its module (``ca_bridge.api``, ``ca_bridge.embedded``, ...): this package
imports nothing, so ``import ca_bridge.api`` loads neither Flask, click, the KMC nor the app shell. The
blueprint is ``ca_bridge.views.bp``, the click group ``ca_bridge.cli.ca_group``; both take their CA from
the one composition root, ``racentre.services.Services``.
"""
