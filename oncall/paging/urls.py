from django.urls import path

from . import views

app_name = "paging"

urlpatterns = [
    path("mine/", views.mine, name="mine"),
    path("incidents/<str:reference>/acknowledge/", views.acknowledge, name="acknowledge"),
    path("incidents/<str:reference>/panel/", views.panel, name="panel"),
    path("ack/<str:token>/", views.acknowledge_link, name="acknowledge_link"),
]
