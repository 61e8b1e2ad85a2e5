"""The audit step of ``racentre demo``: the auditor's signed export of the whole trail, as ``racentre audit
export`` writes it (``racentre.audit``)."""
from __future__ import annotations

from pathlib import Path

from racentre.audit import AuditError, export_range, load_public_key, site_checkpointer, verify_export


def write_audit_export(services, out_dir) -> list[str]:
    """Export the whole trail as ``audit-export.json`` with ``audit-export.json.sig`` and
    ``audit-public-key.pem``, verified before returning; returns the file names written."""
    out = Path(out_dir)
    label = services.config.audit.key_label
    result = export_range(services.db, services.key_manager, out / "audit-export.json", key_label=label,
                          actor="demo", public_key_path=out / "audit-public-key.pem",
                          checkpointer=site_checkpointer(services))
    check = verify_export(result.path, public_key_info=load_public_key(result.public_key_path))
    if not check.ok:
        raise AuditError("the demo audit export does not verify: " + "; ".join(map(str, check.problems)))
    return [p.name for p in result.files()]
