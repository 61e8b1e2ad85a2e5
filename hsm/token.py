"""Token provisioning: build the software token, point it at its directory, initialise a token.

C_InitToken is not exposed by python-pkcs11, so it is called through ctypes on the module's exported
symbol (PKCS#11 v2.40 §5.6); C_InitPIN goes through python-pkcs11 in an SO session. PINs come from
configuration and are never logged.
"""
from __future__ import annotations

import ctypes
import logging
import os
import subprocess
from pathlib import Path

import pkcs11
import pkcs11.exceptions as p11e

from hsm.config import SOFTTOKEN_CONF, SOFTTOKEN_LIBRARY, HsmConfig
from hsm.errors import HsmError, HsmUnavailable, wrap_pkcs11_error
from pkicore.secret import Secret

log = logging.getLogger(__name__)

SOFTTOKEN_SOURCE = SOFTTOKEN_LIBRARY.parent.parent
CKR_OK = 0
CKR_CRYPTOKI_ALREADY_INITIALIZED = 0x191
CKF_TOKEN_INITIALIZED = 0x400


def build_softtoken() -> Path:
    """Build hsm/softtoken with make (incremental, so cheap when up to date)."""
    if not (SOFTTOKEN_SOURCE / "Makefile").is_file():
        raise HsmUnavailable(f"software token sources not found in {SOFTTOKEN_SOURCE}")
    result = subprocess.run(["make", "-s", "-C", str(SOFTTOKEN_SOURCE)], capture_output=True, text=True)
    if result.returncode != 0 or not SOFTTOKEN_LIBRARY.is_file():
        raise HsmUnavailable(f"building the software token failed:\n{result.stderr[-2000:]}")
    return SOFTTOKEN_LIBRARY


def prepare_environment(config: HsmConfig) -> None:
    """The C token reads its directory from RACENTRE_SOFTTOKEN_DIR at C_Initialize: export it first, and
    write its softtoken.conf from ``[softtoken]`` (slots, pbkdf2_iterations, max_pin_failures) so that
    racentre.toml is the one place its settings live.

    Once this process has loaded the module, its directory is fixed for the life of the process: a
    later C_Initialize (after a fork, or after a lost device) must open the same directory, so the
    variable is then left as it is and a differing ``[softtoken] dir`` is only logged (one process
    serves one site; a second site's token belongs in its own process)."""
    if config.is_softtoken:
        if config.softtoken.dir:
            wanted = str(Path(config.softtoken.dir).resolve())
            current = os.environ.get("RACENTRE_SOFTTOKEN_DIR")
            if current and current != wanted and _module_loaded(config.module):
                log.warning("the software token module is already loaded in this process with its "
                            "directory %s; [softtoken] dir %s is not used by this process", current, wanted)
            else:
                Path(wanted).mkdir(parents=True, exist_ok=True, mode=0o700)
                os.environ["RACENTRE_SOFTTOKEN_DIR"] = wanted
                write_token_conf(Path(wanted), config.softtoken.token_conf())
        if not Path(config.module).is_file():
            build_softtoken()


def write_token_conf(directory: Path, text: str | None) -> None:
    """Replace the token's softtoken.conf with ``text`` (atomically, only when it differs); None leaves
    the file alone (the token's defaults, or a file an operator wrote by hand)."""
    if text is None:
        return
    path = directory / SOFTTOKEN_CONF
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except OSError:
        pass
    tmp = directory / f".{SOFTTOKEN_CONF}.{os.getpid()}"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _module_loaded(module: str) -> bool:
    """Whether python-pkcs11 has loaded ``module`` in this process (its per-path cache)."""
    loaded = getattr(pkcs11, "_loaded", {})
    return module in loaded or str(Path(module).resolve()) in loaded


def _c_init_token(module: str, slot_id: int, so_pin: Secret, label: str) -> None:
    dll = ctypes.CDLL(module)
    dll.C_Initialize.argtypes = [ctypes.c_void_p]
    dll.C_Initialize.restype = ctypes.c_ulong
    rv = dll.C_Initialize(None)
    if rv not in (CKR_OK, CKR_CRYPTOKI_ALREADY_INITIALIZED):
        raise HsmUnavailable(f"C_Initialize failed (CKR 0x{rv:x})")
    dll.C_InitToken.argtypes = [ctypes.c_ulong, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    dll.C_InitToken.restype = ctypes.c_ulong
    pin = so_pin.reveal().encode("utf-8")
    label_field = label.encode("utf-8")[:32].ljust(32, b" ")
    rv = dll.C_InitToken(slot_id, pin, len(pin), label_field)
    if rv != CKR_OK:
        raise HsmError(f"C_InitToken failed (CKR 0x{rv:x})")


def init_token(config: HsmConfig, so_pin: Secret, user_pin: Secret, *, slot_id: int | None = None) -> int:
    """Initialise a token with ``config.token`` as label in the first free slot; set the user PIN."""
    prepare_environment(config)
    lib = pkcs11.lib(config.module)
    try:
        slots = lib.get_slots()
        if slot_id is None:
            free = [s for s in slots if not (s.get_token().flags & CKF_TOKEN_INITIALIZED)]
            if not free:
                raise HsmError("no uninitialised slot left in the HSM module")
            slot_id = free[0].slot_id
        _c_init_token(config.module, slot_id, so_pin, config.token)
        token = next(s for s in lib.get_slots() if s.slot_id == slot_id).get_token()
        with token.open(rw=True, so_pin=so_pin.reveal()) as session:
            session.init_pin(user_pin.reveal())
    except p11e.PKCS11Error as exc:
        raise wrap_pkcs11_error(exc, "initialising the HSM token") from exc
    log.info("initialised HSM token %r in slot %d", config.token, slot_id)
    return slot_id


def token_exists(config: HsmConfig) -> bool:
    prepare_environment(config)
    lib = pkcs11.lib(config.module)
    try:
        lib.get_token(token_label=config.token)
    except p11e.NoSuchToken:
        return False
    return True


def ensure_token(config: HsmConfig) -> None:
    """Development/demo convenience: auto-initialise the software token when configured to."""
    prepare_environment(config)
    if token_exists(config):
        return
    if not (config.is_softtoken and config.softtoken.auto_init):
        raise HsmUnavailable(f"no HSM token labelled {config.token!r}; initialise it with "
                             "`racentre hsm init-token`")
    if config.softtoken.so_pin is None or config.pin is None:
        raise HsmUnavailable("auto-initialising the software token needs the SO PIN and the user PIN "
                             "(RACENTRE_SOFTTOKEN_SO_PIN, RACENTRE_HSM_PIN)")
    init_token(config, config.softtoken.so_pin, config.pin)


def reinitialize_after_fork() -> None:
    """PKCS#11 v2.40 §6.6.1: a forked child must call C_Initialize itself; python-pkcs11 caches the
    parent's initialised module, so finalise and initialise every loaded module again."""
    for lib in list(pkcs11._loaded.values()):
        if lib.initialized:
            lib.reinitialize()
