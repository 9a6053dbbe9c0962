#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mns_site.settings")
    from django.core.management import execute_from_command_line

    from mns_site.management.failures import one_line_failures, wants_traceback

    argv = list(sys.argv)
    if wants_traceback(argv, os.environ) and "--traceback" not in argv and len(argv) > 1 and argv[1] != "help":
        argv.append("--traceback")  # Django then lets a CommandError through too, with its traceback
    with one_line_failures("manage.py " + (argv[1] if len(argv) > 1 else ""), argv=argv):
        execute_from_command_line(argv)


if __name__ == "__main__":
    main()
