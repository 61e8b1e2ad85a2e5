"""The services' refusals that can reach a console page, found in the source: every ``raise SomeError("...")`` /
``raise SomeError(f"...")`` of a ``PkiError`` subclass in the modules the console calls (``CONSOLE_REACH``), with
a sample message made from its text (each ``{...}`` replaced by a value of the kind its expression names), for
checking that ``racentre.console.i18n.message`` has Chinese for it."""
from __future__ import annotations

import ast
import importlib
import re
from dataclasses import dataclass

from pkicore.errors import PkiError
from tests.conftest import ROOT

# the modules whose refusals a console page shows (the console calls the RA service, the CA's certificate,
# revocation and CRL calls, the KMC's recovery and KEK rotation, the seal registry, sealing and verification,
# its own jobs, roster and accounts); not the CMP, OCSP or trust services, which answer their own protocols
CONSOLE_REACH = (
    "pkicore/inputs.py",
    "ra/workflow.py", "ra/services.py", "ra/intake.py", "ra/csr.py", "ra/id_numbers.py", "ra/bulk.py",
    "ca_bridge/embedded.py", "ca_bridge/crl.py", "ca_bridge/directory.py",
    "kms/recovery.py", "kms/escrow.py", "kms/services.py",
    "seal/registry.py", "seal/services.py", "seal/geometry.py", "seal/picture.py", "seal/anchor.py",
    "racentre/console/jobs.py", "racentre/console/roster.py", "racentre/console/pages_desk.py",
    "racentre/console/pages_lifecycle.py", "racentre/console/pages_ops.py", "racentre/console/pages_ra.py",
    "racentre/console/registers.py", "racentre/accounts.py",
)

# sample values by what a placeholder's expression is called (first match wins)
_SAMPLES = ((r"(^|[._])(id|ids|number|count|max|min|limit|size|length|len|threshold|n|k|m|seq|version|days|"
             r"row|rows|slot|width|height|dpi|page|pages|index|i|total|quorum|approvals|shares|MAX_\w+|"
             r"\w*_MAX|\w*_max|\w*_id|\w*_size|\w*_count|\w*_number|len\(.*\))$", "17"),
            (r"state", "submitted"), (r"kind", "suspend"), (r"type", "unit"), (r"serial", "1a2b3c"),
            (r"reason", "key_compromise"), (r"usage", "sign"), (r"fmt|format", "p7"), (r"status", "revoked"))


@dataclass(frozen=True)
class Refusal:
    where: str            # path:line
    error: str            # the error class's name
    sample: str           # the message with sample values


def _sample(node) -> str:
    if isinstance(node, ast.Constant):
        return str(node.value)
    parts = []
    for value in node.values:
        if isinstance(value, ast.Constant):
            parts.append(str(value.value))
            continue
        expression = ast.unparse(value.value)
        parts.append(next((sample for pattern, sample in _SAMPLES if re.search(pattern, expression)), "x"))
    return "".join(parts)


def _error_classes(module) -> dict[str, type]:
    return {name: obj for name, obj in vars(module).items() if isinstance(obj, type) and issubclass(obj, PkiError)}


def console_refusals() -> list[Refusal]:
    found = []
    for path in CONSOLE_REACH:
        module = importlib.import_module(path[:-3].replace("/", "."))
        errors = _error_classes(module)
        for node in ast.walk(ast.parse((ROOT / path).read_text())):
            if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args):
                continue
            func, text = node.exc.func, node.exc.args[0]
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name in errors and isinstance(text, (ast.Constant, ast.JoinedStr)):
                found.append(Refusal(f"{path}:{node.lineno}", name, _sample(text)))
    return found


CJK = re.compile(r"[\u3400-\u9fff]")


def untranslated(refusals, message) -> list[Refusal]:
    """The refusals whose sample ``message(sample, "zh")`` gives back without a Chinese character."""
    return [r for r in refusals if not CJK.search(message(r.sample, "zh"))]


if __name__ == "__main__":          # the list, for whoever adds the missing Chinese
    from racentre.console.i18n import message
    everything = console_refusals()
    missing = untranslated(everything, message)
    for r in missing:
        print(f"{r.where:45s} {r.error:22s} {r.sample}")
    print(f"{len(everything) - len(missing)} of {len(everything)} refusals in Chinese", file=__import__("sys").stderr)
