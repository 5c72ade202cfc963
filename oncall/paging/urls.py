from django.urls import path

from . import views

app_name = "paging"

urlpatterns = [
    path("mine/", views.mine, name="mine"),
    path("rules/", views.my_rules, name="rules"),
    path("rules/methods/", views.add_contact_method, name="add_contact_method"),
    path("rules/add/", views.add_rule, name="add_rule"),
    path("rules/<int:pk>/remove/", views.remove_rule, name="remove_rule"),
    path("rules/methods/<int:pk>/test/", views.test_page, name="test_page"),
    path("incidents/<str:reference>/acknowledge/", views.acknowledge, name="acknowledge"),
    path("incidents/<str:reference>/panel/", views.panel, name="panel"),
    path("incidents/<str:reference>/responders/", views.add_responders, name="add_responders"),
    path("ack/<str:token>/", views.acknowledge_link, name="acknowledge_link"),
    path("twilio/status/", views.twilio_status, name="twilio_status"),
    path("twilio/sms/", views.twilio_sms, name="twilio_sms"),
    path("twilio/voice/<int:pk>/gather/", views.twilio_gather, name="twilio_gather"),
]
