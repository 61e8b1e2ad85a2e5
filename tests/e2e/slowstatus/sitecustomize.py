"""Loaded by a test's server interpreters only (tests/e2e/test_serve_ocsp_slow_database.py puts this
directory on their PYTHONPATH): the OCSP status read (``ca_bridge.store.DbStatusStore.current``) first sleeps
for the seconds written in the file named by RACENTRE_TEST_SLOW_STATUS (none when it is empty or 0), and
appends "<pid> <thread> <serials>" to that file's ".log" — a database that became slow, as seen by a worker."""
import os

if os.environ.get("RACENTRE_TEST_SLOW_STATUS"):
    import threading
    import time
    from pathlib import Path

    from ca_bridge import store

    _flag = Path(os.environ["RACENTRE_TEST_SLOW_STATUS"])
    _current = store.DbStatusStore.current

    def _slow_current(self, ca, serials):
        serials = set(serials)
        try:
            delay = float(_flag.read_text() or 0)
        except (OSError, ValueError):
            delay = 0.0
        if delay:
            time.sleep(delay)
        with open(f"{_flag}.log", "a") as log:
            log.write(f"{os.getpid()} {threading.current_thread().name} {len(serials)}\n")
        return _current(self, ca, serials)

    store.DbStatusStore.current = _slow_current
