"""ModerateRequest.set_kept through the real grpcurl binary: the proto3 JSON names
(``setKept``, ``kept``, the KEEP kind) and the status of a refusal."""

from __future__ import annotations

import json

from .test_contract_grpcurl import SERVICE, call, chat, error_code, grpcurl, login, ok


def test_grpcurl_keeps_a_room_and_a_member_is_refused(server_process):
    address = server_process.address
    owner, member = login(address, "keeper"), login(address, "visitor")
    ok(chat(address, owner, {"join": {"room": "keepsake"}}))
    ok(chat(address, member, {"join": {"room": "keepsake"}}))
    moderated = call(
        address,
        "ModerateRoom",
        json.dumps({"room": "keepsake", "setKept": True, "reason": "ours"}),
        owner,
    )
    event = moderated["event"]
    assert (event["kind"], event["kept"], event["sender"], event["text"]) == (
        "KEEP",
        True,
        "keeper",
        "ours",
    )
    refused = grpcurl(
        address,
        f"{SERVICE}/ModerateRoom",
        data=json.dumps({"room": "keepsake", "setKept": False}),
        token=member,
    )
    assert error_code(refused) == "PermissionDenied"
    assert "only owners may keep or let go of #keepsake" in refused.stderr
    rooms = call(address, "ListRooms", '{"prefix": "keepsake"}', member)["rooms"]
    assert [(r["name"], r.get("kept", False)) for r in rooms] == [("keepsake", True)]
    history = call(address, "History", '{"room": "keepsake"}', member)["messages"]
    assert [(m["kind"], m.get("kept", False)) for m in history] == [("KEEP", True)]
