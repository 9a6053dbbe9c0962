"""Limits enforced in front of Django, kept where every command that starts a web server can import them."""

# Header limits gunicorn enforces before Django sees a request: a longer header line or more header fields get its
# 431, a longer request line its 414. Its defaults are 4094, 8190 and 100; every gunicorn command line of the project
# (``rungateway``, ``testsupport``, ``bench``) passes these, and production should too (README).
GUNICORN_LIMITS = ["--limit-request-line", "4094", "--limit-request-fields", "50", "--limit-request-field_size", "8190"]
