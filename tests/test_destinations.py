"""Where a call may be transferred: E.164 or sip:, on the allowlist, exactly or by one of the two
wildcards; anything a model could be talked into is refused, naming the setting."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voiceflow_channels.destinations import (
    allows,
    check_destination,
    entry_problem,
    is_destination,
    masked,
)

ALLOWLIST = ("+15551234567", "sip:desk@pbx.example.com", "+4420*", "sip:*@ext.example.com")


@pytest.mark.parametrize(
    "to",
    [
        "+15551234567",
        "sip:desk@pbx.example.com",
        "+442071234567",
        "+44201234",
        "sip:100@ext.example.com",
        "sip:+15550001111@ext.example.com",
    ],
)
def test_an_allowlisted_destination_passes_as_it_is(to):
    assert check_destination(to, ALLOWLIST) == to


@pytest.mark.parametrize(
    "to",
    [
        "+19005550100",  # a premium number, well formed, not allowlisted
        "+15551234568",
        "+44211234567",  # +442, then not 0
        "+14420123456",  # +4420 inside, not at the start
        "sip:desk@pbx.example.com.evil.com",
        "sip:desk@evil.com",
        "sip:desk@pbx.example.com;transport=tls",  # exact means exact
        "sip:ext.example.com",  # no user for the sip:*@ wildcard
        "sip:100@ext.example.com:5060",
    ],
)
def test_a_destination_off_the_allowlist_is_refused_naming_the_setting(to):
    with pytest.raises(ValueError, match="is not on VOICEFLOW_TRANSFER_ALLOWLIST: add it there"):
        check_destination(to, ALLOWLIST)


@pytest.mark.parametrize(
    "to",
    [
        "",
        "15551234567",
        "+1 555 123 4567",
        "+1555123",  # 7 digits
        "+1234567890123456",  # 16 digits
        "+05551234567",  # no country code starts with 0
        "+" + "".join(chr(0xFF10 + int(d)) for d in "15551234567"),  # fullwidth digits
        " +15551234567",
        "+15551234567\n",
        "tel:+15551234567",
        "SIP:desk@pbx.example.com",
        "sips:desk@pbx.example.com",
        "sip:desk@pbx.example.com?X-Evil=1",
        "sip:desk@pbx.example.com>",
        'sip:"desk"@pbx.example.com',
        "sip:a@b@pbx.example.com",
        "sip:desk @pbx.example.com",
        "sip:",
        "sip:" + "a" * 300 + "@pbx.example.com",
        "client:alice",
    ],
)
def test_anything_but_e164_or_a_sip_uri_is_refused_before_the_allowlist(to):
    with pytest.raises(ValueError, match=r"is neither an E\.164 number .* nor a sip: URI"):
        check_destination(to, [to, "+15551234567"])  # even when it is listed


@pytest.mark.parametrize("to", [None, 15551234567, b"+15551234567", ["+15551234567"]])
def test_a_destination_that_is_not_a_string_is_a_type_error(to):
    with pytest.raises(TypeError, match="transfer destination must be a str, not "):
        check_destination(to, ALLOWLIST)


def test_an_empty_allowlist_allows_nothing():
    with pytest.raises(ValueError, match="not on VOICEFLOW_TRANSFER_ALLOWLIST"):
        check_destination("+15551234567", ())


def test_a_refusal_masks_the_number_it_names():
    with pytest.raises(ValueError) as refused:
        check_destination("+19005550100", ALLOWLIST)
    assert "'********0100'" in str(refused.value)
    assert "9005550100" not in str(refused.value)
    assert masked("sip:+15550001111@ext.example.com") == "sip:********1111@ext.example.com"


@pytest.mark.parametrize(
    "entry", ["+15551234567", "sip:desk@pbx.example.com", "+4420*", "+1*", "sip:*@pbx.example.com"]
)
def test_allowlist_entries_of_each_form_are_fine(entry):
    assert entry_problem(entry) is None


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("*", "is not an E.164 number"),
        ("+*", "is not an E.164 number"),
        ("sip:*", "is not an E.164 number"),
        ("sip:desk@*", "is not an E.164 number"),
        ("sip:*@", "is not an E.164 number"),
        ("+1555*123", "is not an E.164 number"),
        ("555-1234", "is not an E.164 number"),
        (15551234567, "is a int, not a str"),
    ],
)
def test_a_malformed_allowlist_entry_says_what_is_wrong(entry, problem):
    assert entry_problem(entry).startswith(problem)


@settings(max_examples=500, deadline=None)
@given(to=st.one_of(st.text(max_size=40), st.from_regex(r"\+[0-9]{6,17}", fullmatch=True)))
def test_only_a_well_formed_allowlisted_destination_ever_passes(to):
    try:
        assert check_destination(to, ALLOWLIST) == to
    except ValueError:
        return
    assert is_destination(to) and any(allows(entry, to) for entry in ALLOWLIST)
    assert to.startswith(("+1555", "+4420", "sip:"))


def test_a_prefix_wildcard_needs_at_least_one_digit_more_than_its_prefix():
    assert allows("+155512345*", "+1555123456")
    assert not allows("+155512345*", "+155512345")
    assert not allows("+155512345*", "+155512345 ")
