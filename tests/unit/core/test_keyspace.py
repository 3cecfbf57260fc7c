"""The key naming scheme (core.keyspace) and the whole project's list of keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.keyspace import Key, Kind, Rename, collisions, owners_by_space, unknown
from visitation import keyspace

DOCS = Path(__file__).resolve().parents[3] / "docs" / "keyspace.md"


def test_a_key_is_built_from_its_slots_and_parses_back() -> None:
    watchers = Key("call:{call_id}:watchers", Kind.SET, "who watches")
    assert watchers.slots == ("call_id",)
    assert watchers("c1") == "call:c1:watchers"
    assert watchers.parse("call:c1:watchers") == ("c1",)
    assert watchers.parse("call:c1:flags") is None
    assert watchers.parse("call::watchers") is None
    assert watchers.glob() == "call:*:watchers"


def test_only_a_rest_slot_may_hold_a_colon() -> None:
    login = Key("login:{kind}:{name+}", Kind.STRING, "failures")
    assert login("email", "a:b@x") == "login:email:a:b@x"
    assert login.parse("login:email:a:b@x") == ("email", "a:b@x")
    with pytest.raises(ValueError, match="bad kind"):
        login("e:mail", "x")
    with pytest.raises(ValueError, match="bad name"):
        login("email", "")
    with pytest.raises(TypeError):
        login("email")
    call = Key("call:{call_id}", Kind.HASH, "a call")
    with pytest.raises(ValueError, match="bad call_id"):
        call("c1:flags")
    assert not call.matches("call:c1:flags")  # a plain slot is one segment


@pytest.mark.parametrize(
    "pattern",
    ["timers", "Call:{id}", "{id}:call", "call:{id}:{id}", "call:a-b", "call:", "call:{id+}:x"],
)
def test_patterns_outside_the_scheme_are_refused(pattern: str) -> None:
    with pytest.raises(ValueError):
        Key(pattern, Kind.HASH, "x")


def test_collisions_and_strays_are_found() -> None:
    by_id = Key("family:{family_id}", Kind.HASH, "a family")
    by_mail = Key("family:{email}", Kind.STRING, "an e-mail's family")
    refs = Key("family:{family_id}:refs", Kind.SET, "x")
    assert collisions([by_id, by_mail, refs]) == [(by_id, by_mail)]
    rest = Key("family:{rest+}", Kind.STRING, "anything under family:")
    assert collisions([refs, rest]) == [(refs, rest)]  # a rest slot takes the segments after
    assert unknown(["family:F1", "family:F1:refs", "timers"], [by_id, refs]) == ["timers"]
    assert unknown(["q-lib:jobs.msgs", "timers"], [by_id], foreign=["q-lib:*"]) == ["timers"]


def test_a_rename_maps_old_keys_onto_the_new_pattern() -> None:
    moved = Rename(
        "busy-by-role",
        "busy:{role}:{subject}",
        Key("presence:busy:{role}:{subject}", Kind.STRING, "x"),
    )
    assert moved.target("busy:family:F1") == "presence:busy:family:F1"
    assert moved.target("other:family:F1") is None
    with pytest.raises(ValueError):
        Rename("bad", "busy:{who}", Key("presence:busy:{subject}", Kind.STRING, "x"))


def test_the_project_keys_follow_the_scheme() -> None:
    groups = keyspace.groups()
    every = keyspace.every_key()
    assert not collisions(every), collisions(every)
    shared = {space: owners for space, owners in owners_by_space(groups).items() if len(owners) > 1}
    assert not shared, f"spaces with more than one owning package: {shared}"
    assert all(key.about for key in every)


def test_docs_keyspace_is_rendered_from_the_code() -> None:
    assert DOCS.read_text(encoding="utf-8") == keyspace.render(), (
        "docs/keyspace.md is stale: run  python -m visitation.keyspace > docs/keyspace.md"
    )
