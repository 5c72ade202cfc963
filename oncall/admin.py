from django.contrib import admin

from .models import Person, Team


@admin.register(Person)
class PersonAdmin(admin.ModelAdmin):
    list_display = ["name", "email", "phone", "timezone", "is_active"]
    list_filter = ["is_active", "timezone"]
    search_fields = ["name", "email", "phone", "chat_handle"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "team_lead"]
    search_fields = ["name"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["members"]
