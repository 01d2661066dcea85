import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('tenants', '0002_tenant_schema_state'),
    ]

    operations = [
        migrations.CreateModel(
            name='TenantMigrationRun',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('trigger', models.CharField(choices=[('command', 'command'), ('http', 'HTTP /migrate'), ('admin', 'admin'), ('request', 'first request'), ('code', 'code')], default='command', max_length=16)),
                ('status', models.CharField(choices=[('running', 'running'), ('ok', 'ok'), ('failed', 'failed')], default='running', max_length=16)),
                ('started_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('applied', models.JSONField(blank=True, default=list, help_text='Migrations applied (app.migration).')),
                ('seeded', models.BooleanField(default=False, help_text='Main seeds were applied.')),
                ('error', models.TextField(blank=True, default='')),
                ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='migration_runs', to='tenants.tenant')),
            ],
            options={
                'ordering': ['-started_at', '-id'],
                'indexes': [models.Index(fields=['tenant', '-started_at'], name='tenant_run_latest')],
            },
        ),
    ]
