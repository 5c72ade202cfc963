from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from incidents.audit.evidence import verify_bundle
from incidents.audit.services import recorded_export


class Command(BaseCommand):
    help = "Check that an evidence bundle (zip) is unaltered: files against its manifest, manifest against the audit."

    def add_arguments(self, parser):
        parser.add_argument("bundle", type=Path)
        parser.add_argument(
            "--manifest-sha256",
            help="The fingerprint shown at export time. Without it, the portal's own record of exports is used.",
        )

    def handle(self, *args, bundle: Path, manifest_sha256=None, **options):
        try:
            data = bundle.read_bytes()
        except OSError as error:
            raise CommandError(f"Cannot read {bundle}: {error}")
        result = verify_bundle(data, expected_manifest_sha256=manifest_sha256)
        if result.ok and not manifest_sha256:
            export = recorded_export(result.manifest_sha256)
            if export is None:
                result.problems.append(f"manifest SHA-256 {result.manifest_sha256} was never recorded by this portal")
            else:
                self.stdout.write(
                    f"Manifest recorded for {export.incident_reference} at {export.created_at:%Y-%m-%d %H:%M:%S %Z} "
                    f"by {export.created_by_username or 'the portal'}."
                )
        if not result.ok:
            for problem in result.problems:
                self.stderr.write(f"FAIL {problem}")
            raise CommandError(f"{bundle} is NOT intact ({len(result.problems)} problem(s)).")
        self.stdout.write(f"OK {bundle}: {result.files_checked} files match; manifest SHA-256 {result.manifest_sha256}")
