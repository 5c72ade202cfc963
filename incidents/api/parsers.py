"""The API's JSON parser: refuses a NUL character (U+0000) anywhere in the document, naming the top-level field
that holds it. PostgreSQL text cannot store one, and a lookup with one (a slug, a username) would fail in the
database: one check here instead of one per serializer field. Form bodies are checked by
incidentportal.middleware.RefuseNulCharactersMiddleware."""

from __future__ import annotations

from rest_framework import parsers, serializers

NUL = "\x00"


def _holds_nul(value) -> bool:
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, dict):
        return any(_holds_nul(key) or _holds_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        fields = data.items() if isinstance(data, dict) else [("non_field_errors", data)]
        for name, value in fields:
            if _holds_nul(name) or _holds_nul(value):
                field = str(name).replace(NUL, "\\x00")
                raise serializers.ValidationError(
                    {field: ["A NUL character (\\u0000) is not allowed."]}, code="nul_character"
                )
        return data
