"""Which QMP event ``Monitor.event_wait`` takes for a ``match``."""

from __future__ import annotations

from barmap.qemu.qmp import event_matches

DELETED = {"device": "hp", "path": "/machine/peripheral/hp"}


def test_no_match_takes_any_event() -> None:
    assert event_matches({}, None) and event_matches(DELETED, {})


def test_every_key_must_be_there_with_its_value() -> None:
    assert event_matches(DELETED, {"device": "hp"})
    assert not event_matches(DELETED, {"device": "other"})
    assert not event_matches({"path": "/machine/peripheral-anon/device[0]"}, {"device": "hp"})
    assert not event_matches(DELETED, {"device": "hp", "path": "/x"})


def test_nested_data_matches_recursively() -> None:
    data = {"status": {"running": True, "state": "x"}, "n": 1}
    assert event_matches(data, {"status": {"running": True}})
    assert not event_matches(data, {"status": {"running": False}})
    assert not event_matches({"status": "flat"}, {"status": {"running": True}})
