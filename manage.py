#!/usr/bin/env python
"""Django's command-line utility for this project."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.management import execute_from_command_line

    from core.embedded_pg import EmbeddedPostgresError

    try:
        execute_from_command_line(sys.argv)
    except EmbeddedPostgresError as exc:  # a clear sentence, not a traceback
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
