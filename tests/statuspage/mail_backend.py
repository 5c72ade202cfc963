"""An email backend for worker processes in reliability tests: appends one line per message (recipient and
subject) to the file named by STATUSPAGE_MAIL_LOG. O_APPEND writes of one short line are atomic."""

import os

from django.core.mail.backends.base import BaseEmailBackend


class RecordingEmailBackend(BaseEmailBackend):
    def send_messages(self, email_messages):
        path = os.environ["STATUSPAGE_MAIL_LOG"]
        for message in email_messages:
            line = f"{os.getpid()} {','.join(message.to)} {message.subject}\n"
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
        return len(email_messages)


def read_mail_log(path) -> list[tuple[int, str, str]]:
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        return [(int(pid), to, subject) for pid, to, subject in (line.rstrip("\n").split(" ", 2) for line in handle)]
