"""Signal receivers that write the audit trail for every audited model (see registry.py).

They are connected per model (not for every sender) at start-up, so models outside the audited apps keep
Django's fast-path deletes and pay nothing. They run inside the transaction of the save/delete that sent them,
so the record commits or rolls back with the change.

What signals cannot see: QuerySet.update(), bulk_create() and bulk_update(). Services that use those for
audited data call recorder.record_change() themselves (declare_incident's bulk-created checklist copies are
covered by the incident's creation record: they are a copy of the template at that moment).
"""

from __future__ import annotations

from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save

from .models import AuditAction
from .recorder import ignored_fields, record_change, safe_repr, snapshot, stored_snapshot
from .registry import is_audited

_BEFORE = "_audit_before"


def _before_save(sender, instance, raw=False, using=None, update_fields=None, **kwargs):
    if instance._state.adding or instance.pk is None:
        setattr(instance, _BEFORE, None)
        return
    skip = ignored_fields(sender)
    names = {f.name for f in sender._meta.concrete_fields if f.name not in skip}
    if update_fields is not None:
        wanted = set(update_fields)
        names = {f.name for f in sender._meta.concrete_fields if f.name in wanted or f.attname in wanted} - skip
    setattr(instance, _BEFORE, stored_snapshot(sender, instance.pk, names, using) if names else {})


def _equal(old, new) -> bool:
    try:
        return old == new
    except Exception:
        return False


def _after_save(sender, instance, created, raw=False, using=None, update_fields=None, **kwargs):
    if created:
        record_change(action=AuditAction.CREATED, obj=instance, after=snapshot(instance), using=using)
        return
    before = getattr(instance, _BEFORE, None)
    if before is None:
        # The row was not there a moment ago (or pre_save did not run): record the full state.
        record_change(action=AuditAction.CHANGED, obj=instance, after=snapshot(instance), using=using)
        return
    if hasattr(instance, _BEFORE):
        delattr(instance, _BEFORE)
    after = snapshot(instance, names=set(before))
    changed = [name for name in before if not _equal(before[name], after.get(name))]
    if not changed:
        return  # a save that changed nothing audited (only updated_at, last_login, ...)
    record_change(
        action=AuditAction.CHANGED,
        obj=instance,
        before={name: before[name] for name in changed},
        after={name: after[name] for name in changed},
        using=using,
    )


def _after_delete(sender, instance, using=None, **kwargs):
    record_change(action=AuditAction.DELETED, obj=instance, before=snapshot(instance), using=using)


# through model -> (owning model, field name); filled by connect_receivers().
_M2M_FIELDS: dict[type, tuple[type, object]] = {}
_CLEARED = "_audit_m2m_cleared"


def _labelled(model, pks, using) -> list[dict]:
    objects = model._base_manager.using(using).in_bulk(list(pks))
    return [{"id": pk, "repr": safe_repr(objects[pk]) if pk in objects else ""} for pk in sorted(pks, key=str)]


def _m2m_changed(sender, instance, action, reverse, model, pk_set, using=None, **kwargs):
    owner, field = _M2M_FIELDS[sender]
    relation = field.remote_field.get_accessor_name() if reverse else field.name
    if action == "pre_clear":
        current = getattr(instance, relation).values_list("pk", flat=True)
        setattr(instance, _CLEARED, list(current))
        return
    if action == "post_clear":
        previous = getattr(instance, _CLEARED, [])
        if previous:
            record_change(
                action=AuditAction.RELATED_CLEARED,
                obj=instance,
                field=relation,
                before={relation: _labelled(model, previous, using)},
                after={relation: []},
                using=using,
            )
        return
    if action not in ("post_add", "post_remove") or not pk_set:
        return
    items = _labelled(model, pk_set, using)
    if action == "post_add":
        record_change(
            action=AuditAction.RELATED_ADDED, obj=instance, field=relation, after={relation: items}, using=using
        )
    else:
        record_change(
            action=AuditAction.RELATED_REMOVED, obj=instance, field=relation, before={relation: items}, using=using
        )


def connect_receivers(models) -> list[type]:
    audited = [model for model in models if is_audited(model)]
    for model in audited:
        uid = f"audit:{model._meta.label_lower}"
        pre_save.connect(_before_save, sender=model, dispatch_uid=f"{uid}:pre_save")
        post_save.connect(_after_save, sender=model, dispatch_uid=f"{uid}:post_save")
        post_delete.connect(_after_delete, sender=model, dispatch_uid=f"{uid}:post_delete")
        for field in model._meta.local_many_to_many:
            through = field.remote_field.through
            _M2M_FIELDS[through] = (model, field)
            m2m_changed.connect(_m2m_changed, sender=through, dispatch_uid=f"{uid}:{field.name}:m2m")
    return audited


def disconnect_receivers(models) -> None:
    """The inverse of connect_receivers (benchmarks measure the trail's cost with it)."""
    for model in models:
        if not is_audited(model):
            continue
        uid = f"audit:{model._meta.label_lower}"
        pre_save.disconnect(sender=model, dispatch_uid=f"{uid}:pre_save")
        post_save.disconnect(sender=model, dispatch_uid=f"{uid}:post_save")
        post_delete.disconnect(sender=model, dispatch_uid=f"{uid}:post_delete")
        for field in model._meta.local_many_to_many:
            m2m_changed.disconnect(sender=field.remote_field.through, dispatch_uid=f"{uid}:{field.name}:m2m")
