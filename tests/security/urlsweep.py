"""Every URL of the project, filled in for a given incident: the outsider sweep, the CSP check and the XSS page
check all walk the URLconf through this module, so URLs that any area adds later are covered automatically.

A route's parameters are filled by name and converter: incident references get the incident's reference,
ids get the primary keys of rows linked to the incident (the view's model when it can be told from the view:
the admin's model, a DRF view's queryset, a generic view's model), app labels and other regex alternations get
each alternative. Routes that cannot be filled are reported with the reason, never silently dropped.
"""

from __future__ import annotations

import itertools
import re
import uuid
from dataclasses import dataclass, field

from django.apps import apps
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.exceptions import Resolver404

from incidents.audit.evidence import collect_related
from incidents.models import Incident

# Routes never requested, with why. Matched against the route's template (the joined pattern text).
SKIPPED_ROUTES = {
    r"\(\?P<url>\.\*\)": "Django admin's catch-all (it only redirects unknown admin URLs); it matches anything",
}
# Routes requested with GET only: any other method would end the sweep's session.
GET_ONLY_ROUTES = {
    "accounts/logout/": "logging out would end the session mid-sweep",
    "admin/logout/": "logging out would end the session mid-sweep",
}
MAX_URLS_PER_ROUTE = 30
_ROUTE_PARAM = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")
_LITERAL_ALTERNATION = re.compile(r"^[\w.-]+(\|[\w.-]+)*$")


@dataclass
class Target:
    template: str
    url: str
    name: str
    callback: object
    incident_specific: bool  # a parameter was filled with one of the incident's own identifiers


@dataclass
class Sweep:
    targets: list[Target] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def iter_routes(patterns=None, prefix=()):
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            yield from iter_routes(entry.url_patterns, (*prefix, entry))
        elif isinstance(entry, URLPattern):
            yield (*prefix, entry)


def _template(parts) -> str:
    return "".join(str(part.pattern) for part in parts)


def view_model(callback):
    """The model a view works on, when the view says so."""
    model_admin = getattr(callback, "model_admin", None)
    if model_admin is not None:
        return model_admin.model
    cls = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    if cls is None:
        return None
    queryset = getattr(cls, "queryset", None)
    if queryset is not None and hasattr(queryset, "model"):
        return queryset.model
    model = getattr(cls, "model", None)
    if model is not None:
        return model
    serializer = getattr(cls, "serializer_class", None)
    meta = getattr(serializer, "Meta", None)
    return getattr(meta, "model", None)


class Filler:
    """Candidate values for a parameter, by its name, converter and the view's model."""

    def __init__(self, incident: Incident):
        self.incident = incident
        self.related = {label: rows for label, rows in collect_related(incident).items() if rows}

    def ids_for_model(self, model) -> list[tuple[str, bool]]:
        if model is None:
            return []
        if issubclass(model, Incident):
            return [(str(self.incident.pk), True)]
        rows = self.related.get(model._meta.label_lower)
        if rows:
            return [(str(row.pk), True) for row in rows[:3]]
        first = model._base_manager.order_by("pk").values_list("pk", flat=True).first()
        return [(str(first if first is not None else 999999), False)]

    def ids_by_name(self, name: str) -> list[tuple[str, bool]]:
        stem = re.sub(r"(_?(pk|id))$", "", name).replace("_", "")
        if stem in ("", "object", "incident"):
            if stem == "incident":
                return [(str(self.incident.pk), True)]
            return []
        matches = [label for label in self.related if stem in label.split(".")[1]]
        if matches:
            return [(str(row.pk), True) for label in matches for row in self.related[label][:2]]
        model_matches = [m for m in apps.get_models() if stem in m._meta.model_name]
        return [value for m in model_matches[:3] for value in self.ids_for_model(m)]

    def any_linked_ids(self) -> list[tuple[str, bool]]:
        values = [(str(self.incident.pk), True)]
        values += [(str(rows[0].pk), True) for rows in self.related.values()]
        seen, unique = set(), []
        for value in values:
            if value[0] not in seen:
                seen.add(value[0])
                unique.append(value)
        return unique

    def values(self, name: str, converter: str | None, group_regex: str | None, model) -> list[tuple[str, bool]]:
        candidates = self._values(name, converter, group_regex, model)
        if not group_regex:
            return candidates
        matching = [c for c in candidates if re.fullmatch(group_regex, c[0])]
        return matching or [c for c in self.attribute_values(name, model) if re.fullmatch(group_regex, c[0])]

    def attribute_values(self, name: str, model) -> list[tuple[str, bool]]:
        """Values of an attribute called like the parameter (a DRF lookup_field such as `level`)."""
        found = []
        for rows in self.related.values():
            found += [(str(getattr(row, name)), True) for row in rows[:2] if getattr(row, name, None) is not None]
        if model is not None and name in {f.name for f in model._meta.concrete_fields}:
            found += [(str(v), False) for v in model._base_manager.values_list(name, flat=True)[:3]]
        return found

    def _values(self, name: str, converter: str | None, group_regex: str | None, model) -> list[tuple[str, bool]]:
        reference = (self.incident.reference, True)
        lowered = name.lower()
        if group_regex and _LITERAL_ALTERNATION.match(group_regex):
            return [(alternative, False) for alternative in group_regex.split("|")]
        if "reference" in lowered or lowered in ("incident", "ref"):
            return [reference]
        if lowered == "format":
            return [("json", False)]
        if converter == "uuid" or "uuid" in lowered:
            return [(str(uuid.UUID(int=0)), False)]
        if lowered in ("token", "key", "signature", "secret", "uidb64"):
            return [("0" * 32, False)]
        if converter == "slug" or lowered.endswith("slug"):
            slugs = [
                (row.slug, True) for rows in self.related.values() for row in rows[:1] if getattr(row, "slug", None)
            ]
            if model is not None and hasattr(model, "slug") and not slugs:
                first = model._base_manager.values_list("slug", flat=True).first()
                slugs = [(first, False)] if first else []
            return slugs or [("no-such-slug", False)]
        idish = converter in ("int", "path") or lowered in ("pk", "id", "object_id") or lowered.endswith(("_id", "_pk"))
        if idish or (group_regex and re.fullmatch(group_regex, "1")):
            by_name = self.ids_by_name(lowered)
            if lowered in ("pk", "id", "object_id") or not by_name:
                by_model = self.ids_for_model(model)
                return by_model or by_name or self.any_linked_ids()
            return by_name
        return [reference]


def _regex_parts(regex: str):
    """Split a regex into literal text and named groups; None if a part cannot be turned into a URL."""
    text = regex[1:] if regex.startswith("^") else regex
    text = re.sub(r"(\\Z|\$)$", "", text)
    parts, i, literal = [], 0, ""
    while i < len(text):
        if text.startswith("(?P<", i):
            end_name = text.index(">", i)
            depth, j = 0, i
            while j < len(text):
                if text[j] == "\\":
                    j += 2
                    continue
                if text[j] == "(":
                    depth += 1
                elif text[j] == ")":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if literal:
                parts.append(literal)
                literal = ""
            parts.append((text[i + 4 : end_name], text[end_name + 1 : j]))
            i = j + 1
        else:
            literal += text[i]
            i += 1
    if literal:
        parts.append(literal)
    cleaned = []
    for part in parts:
        if isinstance(part, str):
            part = part.replace("/?", "/")
            part = re.sub(r"\\(.)", r"\1", part)
            if re.search(r"[\[\]()*+?|^${}]", part):
                return None
        cleaned.append(part)
    return cleaned


def _part_choices(part, filler: Filler, model):
    """Lists of (text, incident_specific) alternatives for each piece of one pattern."""
    pattern = part.pattern
    regex = getattr(pattern, "_regex", None)
    route = getattr(pattern, "_route", None)
    if route is not None:
        pieces, last = [], 0
        for match in _ROUTE_PARAM.finditer(route):
            pieces.append([(route[last : match.start()], False)])
            pieces.append(filler.values(match["name"], match["converter"] or "str", None, model))
            last = match.end()
        pieces.append([(route[last:], False)])
        return pieces
    if regex is None:  # a locale prefix or a custom pattern class
        return [[(str(pattern), False)]]
    parts = _regex_parts(regex)
    if parts is None:
        return None
    return [
        [(piece, False)] if isinstance(piece, str) else filler.values(piece[0], None, piece[1], model)
        for piece in parts
    ]


def build_sweep(incident: Incident) -> Sweep:
    filler = Filler(incident)
    sweep = Sweep()
    for parts in iter_routes():
        pattern = parts[-1]
        template = _template(parts)
        reason = next((why for rx, why in SKIPPED_ROUTES.items() if re.search(rx, template)), None)
        if reason:
            sweep.skipped[template] = reason
            continue
        model = view_model(pattern.callback)
        choices = []
        for part in parts:
            part_choices = _part_choices(part, filler, model)
            if part_choices is None:
                sweep.skipped[template] = "regex that cannot be filled into a URL"
                break
            choices.extend(part_choices)
        else:
            urls = {}
            for combination in itertools.islice(itertools.product(*choices), MAX_URLS_PER_ROUTE):
                url = "/" + "".join(text for text, _ in combination)
                urls.setdefault(url, any(specific for _, specific in combination))
            resolved_any = False
            for url, specific in urls.items():
                try:
                    match = resolve(url)
                except Resolver404:
                    continue
                if match.func is not pattern.callback:
                    continue  # an earlier route answers this URL; it is swept on its own
                resolved_any = True
                sweep.targets.append(Target(template, url, pattern.name or "", pattern.callback, specific))
            if not resolved_any:
                sweep.skipped[template] = f"no filled URL resolves to this route (tried {sorted(urls)[:3]})"
    return sweep


def body_text(response, limit: int = 512 * 1024) -> str:
    if getattr(response, "streaming", False):
        chunks, size = [], 0
        for chunk in response.streaming_content:
            chunks.append(chunk if isinstance(chunk, bytes) else str(chunk).encode())
            size += len(chunks[-1])
            if size >= limit or response.get("Content-Type", "").startswith("text/event-stream"):
                break
        response.close()
        data = b"".join(chunks)
    else:
        data = response.content
    return data.decode("utf-8", "replace")
