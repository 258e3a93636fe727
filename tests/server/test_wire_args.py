"""The handlers' shared argument plumbing: arity refusals and base64 text."""

import xmlrpc.client
from typing import Any
from xmlrpc.client import Binary

import pytest

from sfa.errors import BadArgs, GeniCode, MissingArgs
from sfa.server.dispatch import CallContext, Dispatcher, parse_call
from sfa.server.envelope import FaultReplies
from sfa.server.wire_args import (
    as_is,
    binary_as_text,
    call_args,
    credential_list,
    declare,
    options_struct,
    rspec_text,
)

CALL = CallContext(method="Describe", peer=None, client_address="127.0.0.1")


def test_optional_arguments_are_filled_with_none() -> None:
    assert call_args(CALL, ("urns", "creds"), 2, 3) == ["urns", "creds", None]
    assert call_args(CALL, ("urns", "creds", {"o": 1}), 2, 3) == ["urns", "creds", {"o": 1}]


def test_too_few_arguments_are_missing_args_naming_the_method() -> None:
    params = ("urns",)
    with pytest.raises(MissingArgs, match="Describe takes at least 2 arguments, got 1") as err:
        call_args(CALL, params, 2, 3)
    assert err.value.code == GeniCode.MISSINGARGS
    assert params == ("urns",)


def test_too_many_arguments_are_bad_args_naming_the_method() -> None:
    with pytest.raises(BadArgs, match="Describe takes at most 3 arguments, got 4") as err:
        call_args(CALL, (1, 2, 3, 4), 2, 3)
    assert err.value.code == GeniCode.BADARGS


def test_base64_rspec_becomes_text_and_text_stays() -> None:
    assert rspec_text("<rspec/> é".encode()) == "<rspec/> é"
    assert rspec_text("<rspec/>") == "<rspec/>"
    assert rspec_text(None) is None


def test_base64_that_is_not_the_encoding_is_refused_with_the_message() -> None:
    with pytest.raises(BadArgs, match="the RSpec must be UTF-8 text"):
        rspec_text(b"\xff\xfe")
    with pytest.raises(BadArgs, match="a certificate must be PEM text"):
        binary_as_text("é".encode(), "ascii", "a certificate must be PEM text")


def test_declare_passes_the_caller_and_converted_arguments() -> None:
    calls: list[tuple[object, ...]] = []

    def method(*args: object) -> str:
        calls.append(args)
        return "done"

    handler = declare(method, as_is, credential_list, options_struct, least=2,
                      reply=str.upper)
    assert handler(CALL, ("urns", "<credential/>")) == "DONE"
    assert handler(CALL, ("urns", ["a", "b"], "")) == "DONE"
    assert calls == [(None, "urns", ["<credential/>"], {}), (None, "urns", ["a", "b"], {})]


@pytest.mark.parametrize("lone", ["<credential/>", b"<credential/>",
                                  {"geni_type": "geni_sfa", "geni_value": "<c/>"}])
def test_a_lone_credential_becomes_a_list_of_one(lone: object) -> None:
    assert credential_list(lone) == [lone]
    assert credential_list(None) == [] and credential_list(("a",)) == ["a"]


def test_options_absent_or_empty_string_are_an_empty_struct() -> None:
    assert options_struct(None) == {} and options_struct("") == {}
    assert options_struct({"geni_compressed": True}) == {"geni_compressed": True}


@pytest.mark.parametrize(("convert", "bad", "message"), [
    (credential_list, 42, "credentials must be a list of credentials, got int"),
    (options_struct, "x", "options must be a struct, got str"),
    (options_struct, ["a"], "options must be a struct, got list"),
])
def test_other_shapes_are_bad_args_naming_what_came(convert: object, bad: object,
                                                     message: str) -> None:
    with pytest.raises(BadArgs, match=message) as err:
        convert(bad)  # type: ignore[operator]
    assert err.value.code == GeniCode.BADARGS


def test_declare_refuses_a_wrong_arity_without_calling() -> None:
    calls: list[tuple[object, ...]] = []
    handler = declare(lambda *args: calls.append(args), as_is, as_is, as_is, least=2)
    with pytest.raises(MissingArgs):
        handler(CALL, ("urns",))
    with pytest.raises(BadArgs):
        handler(CALL, (1, 2, 3, 4))
    assert calls == []


def test_parse_call_turns_base64_into_bytes_at_every_depth() -> None:
    body = xmlrpc.client.dumps(
        (Binary(b"<credential/>"), [Binary(b"a"), "b"],
         {"geni_value": Binary(b"c"), "when": "d"}), "Allocate").encode()
    params, method = parse_call(body)
    assert method == "Allocate"
    assert params == (b"<credential/>", [b"a", "b"], {"geni_value": b"c", "when": "d"})


def test_a_reply_with_counts_past_32_bits_travels_with_them_as_doubles() -> None:
    """Usage counters (bytes, nanoseconds) outgrow XML-RPC's 32-bit integers: the reply
    carries them as doubles instead of failing, small integers stay integers."""
    big = 5 * 2**40
    dispatcher = Dispatcher(service="t", handlers={
        "Usage": lambda call, params: {"usage": {"sent_bytes": big, "tasks": 3},
                                       "list": [2**31, -(2**31)], "flag": True}},
        replies=FaultReplies(), anonymous_methods=frozenset({"Usage"}))
    outcome = dispatcher.handle(xmlrpc.client.dumps((), "Usage").encode(), (), "127.0.0.1")
    (reply,), _ = xmlrpc.client.loads(outcome.body)
    value: Any = reply
    assert value == {"usage": {"sent_bytes": float(big), "tasks": 3},
                     "list": [float(2**31), -(2**31)], "flag": True}
    assert isinstance(value["usage"]["tasks"], int) and isinstance(value["list"][1], int)
