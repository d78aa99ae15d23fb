from django.urls import path

from tasksapp import views

urlpatterns = [
    path("ping", views.ping),
    path("write_task_a", views.write_task_a),
    path("write_task_b", views.write_task_b),
    path("add_row", views.add_row),
]
