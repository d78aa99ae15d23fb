from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.CreateModel(
            name="Row",
            fields=[
                ("id", models.AutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=200)),
                ("value", models.IntegerField()),
                ("source", models.CharField(max_length=50)),
                ("written_by_pid", models.IntegerField()),
            ],
        ),
    ]
