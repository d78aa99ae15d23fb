"""The smallest Django settings the django_settings option needs."""
SECRET_KEY = "spoold-tests-only"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth"]
DATABASES = {}
USE_TZ = True
