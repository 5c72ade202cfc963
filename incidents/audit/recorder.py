"""Writing audit records: `record_change` for services that want to say something explicitly (an export),
`BulkRecorder` for bulk and raw-SQL writes that no signal sees (alert ingestion, change events, the paging
batcher), and the snapshot helpers the signal receivers use."""

from __future__ import annotations

import hashlib
import json
import re
from functools import cache

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models.fields.files import FieldFile

from incidents.models import Incident

from .context import _UNSET, current_actor, current_context
from .models import AuditAction, AuditRecord
from .registry import NOISE_FIELDS

SENSITIVE_FIELD = re.compile(r"password|secret|token|api_key|key_hash|signing_key", re.IGNORECASE)
REDACTED = "[redacted]"


class _Encoder(DjangoJSONEncoder):
    def default(self, o):
        if isinstance(o, FieldFile):
            return o.name or ""
        if isinstance(o, bytes | memoryview):
            data = bytes(o)
            return f"<{len(data)} bytes sha256={hashlib.sha256(data).hexdigest()}>"
        if isinstance(o, set | frozenset):
            return sorted(o, key=str)
        try:
            return super().default(o)
        except TypeError:
            # A field type JSON does not know (a phone number, a range ...): its text, rather than failing the
            # change the record belongs to.
            return str(o)


def to_json(data):
    """Plain JSON values (strings for dates, decimals, durations) so what is stored is what is compared."""
    return json.loads(json.dumps(data, cls=_Encoder))


def object_type(model) -> str:
    return f"{model._meta.app_label}.{model._meta.model_name}"


def ignored_fields(model) -> frozenset[str]:
    """Fields whose changes are not worth a record on their own: auto_now timestamps (they change with every
    save), HTML rendered from a Markdown field that is audited itself, and the registry's noise list."""
    names = {f.name for f in model._meta.concrete_fields if getattr(f, "auto_now", False)}
    names |= {f.name for f in model._meta.concrete_fields if f.name.endswith("_html")}
    names |= NOISE_FIELDS.get(object_type(model), set())
    return frozenset(names)


def snapshot(instance, names=None) -> dict:
    skip = ignored_fields(type(instance))
    return {
        f.name: f.value_from_object(instance)
        for f in instance._meta.concrete_fields
        if f.name not in skip and (names is None or f.name in names)
    }


def stored_snapshot(model, pk, names, using) -> dict | None:
    """The row as the database has it now (before the save that is about to happen): one query."""
    fields = [f for f in model._meta.concrete_fields if f.name in names]
    row = model._base_manager.using(using).filter(pk=pk).values(*[f.attname for f in fields]).first()
    if row is None:
        return None
    return {f.name: row[f.attname] for f in fields}


def redact(data: dict | None) -> dict | None:
    """Secrets never go into the trail; that they changed does (snapshots compare the real values)."""
    if data is None:
        return None
    return {
        key: REDACTED if SENSITIVE_FIELD.search(key) and value not in (None, "") else value
        for key, value in data.items()
    }


def safe_repr(instance) -> str:
    try:
        text = str(instance)
    except Exception:  # a __str__ that follows a relation deleted in the same cascade
        text = f"{type(instance).__name__} #{instance.pk}"
    return text[:200]


@cache
def _incident_path(model):
    """How to find the incident of a row: ("self",), ("fk", attname) or ("via", fk_field, target_attname)."""
    if issubclass(model, Incident):
        return ("self",)
    fks = [f for f in model._meta.concrete_fields if f.is_relation and (f.many_to_one or f.one_to_one)]
    for f in fks:
        if f.related_model is Incident:
            return ("fk", f.attname)
    # One hop further (an action item of a post-mortem of an incident, a page of an alert of an incident).
    for f in fks:
        target = f.related_model
        if target is None or target is model:
            continue
        for g in target._meta.concrete_fields:
            if g.is_relation and (g.many_to_one or g.one_to_one) and g.related_model is Incident:
                return ("via", f, g.attname)
    return None


def incident_id_of(instance, using=None):
    path = _incident_path(type(instance))
    if path is None:
        return None
    if path[0] == "self":
        return instance.pk
    if path[0] == "fk":
        return getattr(instance, path[1])
    _, fk, target_attname = path
    target_id = getattr(instance, fk.attname)
    if target_id is None:
        return None
    if fk.is_cached(instance):
        return getattr(fk.get_cached_value(instance), target_attname, None)
    return (
        fk.related_model._base_manager.using(using).filter(pk=target_id).values_list(target_attname, flat=True).first()
    )


def record_change(
    *,
    action: str,
    obj: models.Model | None = None,
    object_type_label: str = "",
    object_id: str = "",
    object_repr: str = "",
    before: dict | None = None,
    after: dict | None = None,
    field: str = "",
    incident_id: int | None = None,
    actor=_UNSET,
    using: str | None = None,
) -> AuditRecord:
    """Append one audit record, in the caller's transaction (the same connection), so it commits or rolls
    back with the change it describes. The actor defaults to the current audit context (request or
    acting_as)."""
    context = current_context()
    if actor is _UNSET:
        actor = current_actor()
    if obj is not None:
        object_type_label = object_type_label or object_type(type(obj))
        object_id = object_id or str(obj.pk)
        object_repr = object_repr or safe_repr(obj)
        if incident_id is None:
            incident_id = incident_id_of(obj, using)
        using = using or obj._state.db
    return AuditRecord.objects.using(using or "default").create(
        actor=actor if actor is not None and actor.pk else None,
        actor_username=actor.get_username() if actor is not None else "",
        action=action,
        object_type=object_type_label,
        object_id=str(object_id)[:64],
        object_repr=(object_repr or "")[:200],
        field=field,
        incident_id=incident_id,
        before=to_json(redact(before)) if before is not None else None,
        after=to_json(redact(after)) if after is not None else None,
        source=context.source,
        request_id=context.request_id,
        client_request_id=context.client_request_id,
        ip_address=context.ip_address,
    )


class BulkRecorder:
    """Audit records for writes the signal receivers do not see (bulk_create, QuerySet.update(), raw SQL), with
    the fields record_change writes, inserted by flush() in one statement inside the change's transaction.

    The actor and the request (source, request id, address) are read once, when the recorder is made: a batch
    belongs to one request or task. `context_columns()` gives the same values as plain data, for a statement that
    writes its audit rows itself (the ingestion's single statement carries several requests' rows)."""

    def __init__(self, *, actor=_UNSET):
        context = current_context()
        self.actor = current_actor() if actor is _UNSET else actor
        self.source, self.request_id, self.ip_address = context.source, context.request_id, context.ip_address
        self.client_request_id = context.client_request_id
        self.records: list[AuditRecord] = []

    def __len__(self) -> int:
        return len(self.records)

    def add(
        self,
        action: str,
        obj: models.Model,
        *,
        before: dict | None = None,
        after: dict | None = None,
        field: str = "",
        incident_id: int | None = None,
    ) -> None:
        actor = self.actor
        self.records.append(
            AuditRecord(
                actor=actor if actor is not None and actor.pk else None,
                actor_username=actor.get_username() if actor is not None else "",
                action=action,
                object_type=object_type(type(obj)),
                object_id=str(obj.pk)[:64],
                object_repr=safe_repr(obj),
                field=field,
                incident_id=incident_id if incident_id is not None else incident_id_of(obj),
                before=to_json(redact(before)) if before is not None else None,
                after=to_json(redact(after)) if after is not None else None,
                source=self.source,
                request_id=self.request_id,
                client_request_id=self.client_request_id,
                ip_address=self.ip_address,
            )
        )

    def created(self, obj: models.Model, *, incident_id: int | None = None) -> None:
        """obj was inserted (it has its primary key): its whole audited state, as the post_save receiver writes."""
        self.add(AuditAction.CREATED, obj, after=snapshot(obj), incident_id=incident_id)

    def changed(self, obj: models.Model, *, before: dict, after: dict, incident_id: int | None = None) -> bool:
        """Only the fields whose values differ, as the post_save receiver writes; nothing when none differs."""
        names = [name for name in before if name in after and before[name] != after[name]]
        if not names:
            return False
        self.add(
            AuditAction.CHANGED,
            obj,
            before={name: before[name] for name in names},
            after={name: after[name] for name in names},
            incident_id=incident_id,
        )
        return True

    def context_columns(self) -> dict:
        actor = self.actor
        return {
            "audit_actor_id": actor.pk if actor is not None else None,
            "audit_actor_username": actor.get_username() if actor is not None else "",
            "audit_source": self.source,
            "audit_request_id": self.request_id,
            "audit_client_request_id": self.client_request_id,
            "audit_ip": self.ip_address,
        }

    def flush(self, using: str | None = None) -> list[AuditRecord]:
        records, self.records = self.records, []
        if records:
            AuditRecord.objects.using(using or "default").bulk_create(records)
        return records
