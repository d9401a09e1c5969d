"""The Search call's contract, driven through the real grpcurl binary (as in the README)."""

from __future__ import annotations

import json

from .test_contract_grpcurl import SERVICE, call, chat, error_code, grpcurl, login, ok


def test_grpcurl_searches_what_the_caller_may_read_newest_first(server_process):
    address = server_process.address
    alice, bob = login(address, "alice"), login(address, "bob")
    ok(
        chat(
            address,
            alice,
            {"join": {"room": "general"}},
            {"send": {"room": "general", "text": "Deploy on Friday?", "clientMsgId": "a-1"}},
            {"send": {"room": "general", "text": "no deploys on friday", "clientMsgId": "a-2"}},
            {"send": {"toUser": "bob", "text": "friday deploy plan", "clientMsgId": "a-3"}},
        )
    )
    own = {"room": "private", "text": "bob's own friday deploy", "clientMsgId": "b-1"}
    ok(chat(address, bob, {"join": {"room": "private"}}, {"send": own}))

    found = call(address, "Search", '{"query": "friday deploy*"}', token=alice)
    assert [h["message"]["text"] for h in found["hits"]] == [
        "friday deploy plan",
        "no deploys on friday",
        "Deploy on Friday?",
    ]
    assert found["hits"][0]["snippet"] == "friday deploy plan"
    assert found["hits"][0]["message"]["to_user"] == "bob"
    assert "next_page_token" not in found

    page = call(
        address, "Search", '{"query": "friday", "room": "general", "limit": 1}', token=alice
    )
    assert [h["message"]["seq"] for h in page["hits"]] == ["2"]
    rest = call(
        address,
        "Search",
        json.dumps({"query": "friday", "room": "general", "pageToken": page["next_page_token"]}),
        token=alice,
    )
    assert [h["message"]["seq"] for h in rest["hits"]] == ["1"]

    refused = grpcurl(
        address, f"{SERVICE}/Search", data='{"query":"x","room":"private"}', token=alice
    )
    assert error_code(refused) == "NotFound"
    bad = grpcurl(address, f"{SERVICE}/Search", data='{"query":"\\"(*"}', token=alice)
    assert error_code(bad) == "InvalidArgument"
    assert "at least one word" in bad.stderr


def test_grpcurl_describes_the_search_call(server_process):
    text = ok(grpcurl(server_process.address, "describe", SERVICE))
    assert "rpc Search ( .chatrpc.v1.SearchRequest ) returns ( .chatrpc.v1.SearchResponse )" in text
