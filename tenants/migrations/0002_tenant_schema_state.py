# Existing tenants start as pending: the next auto-migration (or migrate_tenants) brings them up to date.

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('tenants', '0001_initial'),
    ]

    operations = [
        migrations.AddField(
            model_name='tenant',
            name='schema_state',
            field=models.CharField(choices=[('pending', 'pending: to be provisioned, migrated and seeded'), ('migrating', 'migrating'), ('ready', 'ready'), ('failed', 'failed: the last migration failed')], default='pending', help_text="Whether the database is up to date with the tenant's modules; pending after a change.", max_length=16),
        ),
        migrations.AddField(
            model_name='tenant',
            name='schema_state_at',
            field=models.DateTimeField(default=django.utils.timezone.now, help_text='When schema_state last changed.'),
        ),
    ]
