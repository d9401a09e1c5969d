"""The Search call's contract, driven through the real grpcurl binary (as in the README)."""

from __future__ import annotations

import json
import re
import subprocess

from .test_contract_grpcurl import (
    GRPCURL,
    RUN_TIMEOUT,
    SERVICE,
    _readme_grpcurl_block,
    call,
    chat,
    error_code,
    grpcurl,
    login,
    ok,
)


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


def test_the_readme_grpcurl_block_finds_what_it_sent(server_process):
    script = _readme_grpcurl_block().replace(".venv/bin/grpcurl", GRPCURL)
    script = script.replace("localhost:50051", server_process.address)
    run = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        timeout=4 * RUN_TIMEOUT,
    )
    assert run.returncode == 0, run.stderr
    # The two Search calls: "hello" in #general, then "note* self" in carol's own DM.
    # (The block's output mixes text, from list and describe, and JSON.)
    assert re.findall(r'"snippet": "([^"]*)"', run.stdout) == ["hello", "note to self"]
