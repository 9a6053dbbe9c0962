from django.db import migrations


class Migration(migrations.Migration):
    """The heartbeats moved from the ``mns_site`` app to ``core`` (the kernel left the wiring package).

    Heartbeats are rewritten every few seconds by the worker and beat, so nothing is carried over: a database made
    before the move loses its old table and its old migration rows, and ``core_heartbeat`` fills at the next beat.
    """

    dependencies = [("core", "0001_initial")]

    operations = [
        migrations.RunSQL("DROP TABLE IF EXISTS mns_site_heartbeat", reverse_sql=migrations.RunSQL.noop),
        migrations.RunSQL("DELETE FROM django_migrations WHERE app = 'mns_site'", reverse_sql=migrations.RunSQL.noop),
    ]
