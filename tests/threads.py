"""Concurrency tests' one shape: ``worker(n)`` on ``count`` threads at once, every exception collected."""
from __future__ import annotations

import threading


def run_threads(worker, count: int) -> list[BaseException]:
    """Run ``worker(0) .. worker(count - 1)`` on their own threads, wait for all, return what they raised."""
    errors: list[BaseException] = []

    def guarded(n):
        try:
            worker(n)
        except BaseException as exc:  # noqa: BLE001 - collected for the caller's assertion
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors
