"""access: who may act — officers' API tokens, the ``Principal`` every request and CLI step acts as, and
``require_roles`` that each blueprint endpoint declares (role-based access, GB/T 39786 §8.1.4.2 access
control; separation of duties and four-eyes count the ``Principal.name`` person).

Below every domain package (``pkicore < access < hsm``): it uses only ``pkicore`` (errors, the database
session helpers, the audit trail) and Flask, never the app shell, so ``hsm``, ``ca_bridge``, ``kms``,
``timestamp``, ``seal`` and ``ra`` blueprints and CLIs import it without reaching back up into ``racentre``.
"""
