"""The WSGI application gunicorn serves: /usr/bin/python3 -m gunicorn tutorial.wsgi:application"""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tutorial.settings")
application = get_wsgi_application()
