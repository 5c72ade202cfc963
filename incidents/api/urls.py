from django.urls import include, path

urlpatterns = [
    path("integrations/", include("incidents.alerting.urls")),
]
