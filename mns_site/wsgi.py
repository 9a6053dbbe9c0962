import os
import sys

from django.core.wsgi import get_wsgi_application

from core.admission import admitted
from core.fastpath import served_admitted, served_early
from mns_site.management.failures import one_line_failures

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mns_site.settings")
# A setting gunicorn's worker cannot start with is one line, and exit 3 (gunicorn's "worker failed to boot") stops
# gunicorn instead of starting worker after worker.
with one_line_failures("gunicorn mns_site.wsgi", argv=sys.argv, exit_code=3):
    # The bounded queue goes in front of Django: a refusal costs no request object and no middleware. The early
    # answers (a cached lookup: one Redis round trip) go in front of it: they hold no database connection. Those that
    # read the database (a mailbox's messages) go inside it, in front of Django's handler.
    application = served_early(admitted(served_admitted(get_wsgi_application())))
