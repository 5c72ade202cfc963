"""A channel backend for reliability tests and the benchmark: records each delivery to an append-only file,
one line per idempotency key (the batched rows of a message included), with the wall-clock time and the pid.

RELIABILITY_DELIVERIES: the file of deliveries. RELIABILITY_STARTS (optional): a file that gets a line as each
send starts, so a test can kill a worker in the middle of a send. RELIABILITY_SEND_DELAY: seconds a send takes.
Appends of one short line with O_APPEND are atomic, and survive the writer being killed.
"""

import os
import time

from oncall.paging.channels import Backend, PermanentFailure


def _append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


class RecordingBackend(Backend):
    def send(self, message):
        if not message.address:
            raise PermanentFailure("no address")
        keys = [item["idempotency_key"] for item in message.data.get("items", [])] or [message.idempotency_key]
        starts = os.environ.get("RELIABILITY_STARTS")
        if starts:
            _append(starts, f"{os.getpid()} {message.idempotency_key}\n")
        delay = float(os.environ.get("RELIABILITY_SEND_DELAY", "0"))
        if delay:
            time.sleep(delay)
        now = time.time()
        _append(os.environ["RELIABILITY_DELIVERIES"], "".join(f"{now:.6f} {os.getpid()} {key}\n" for key in keys))


def read_deliveries(path) -> list[tuple[float, int, str]]:
    """[(time, pid, idempotency key)] in file order."""
    if not os.path.exists(path):
        return []
    rows = []
    with open(path) as handle:
        for line in handle:
            parts = line.split()
            if len(parts) == 3:
                rows.append((float(parts[0]), int(parts[1]), parts[2]))
    return rows
