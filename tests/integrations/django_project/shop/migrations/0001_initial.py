from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies: list[tuple[str, str]] = []
    operations = [
        migrations.CreateModel(
            name="Row",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("value", models.CharField(max_length=100)),
                ("pid", models.IntegerField()),
                ("opened", models.IntegerField()),
                ("closed", models.IntegerField()),
            ],
        ),
    ]
