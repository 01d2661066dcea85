import uuid

from django.db import migrations


def identity_create(apps, schema_editor):
    """Made with the master database, before anything could write a mark with it."""
    Installation = apps.get_model("installation", "Installation")
    Installation.objects.using(schema_editor.connection.alias).get_or_create(pk=1, defaults={"uuid": uuid.uuid4()})


def identity_drop(apps, schema_editor):
    Installation = apps.get_model("installation", "Installation")
    Installation.objects.using(schema_editor.connection.alias).filter(pk=1).delete()


class Migration(migrations.Migration):
    dependencies = [("installation", "0001_installation")]

    operations = [migrations.RunPython(identity_create, identity_drop)]
