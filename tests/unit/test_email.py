"""E-mail addresses are normalised once and refused with a reason a caller can act on."""

import pytest
from martech_bridge.models import plain
from martech_bridge.models.email import InvalidEmail, email_address, normalize_email
from pydantic import BaseModel, ValidationError

from devkit.api_models import EmailAddress


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("taro@example.com", "taro@example.com"),
        ("  Taro.Yamada@Example.COM \n", "taro.yamada@example.com"),
        ("hanako+news@sub.example.co.jp", "hanako+news@sub.example.co.jp"),
        ("user@例え.jp", "user@xn--r8jz45g.jp"),
        ("o'brien@example.org.", "o'brien@example.org"),
        # IDNA 2008 / UTS #46 non-transitional: ß stays ß (IDNA 2003 made it another domain, strasse.de).
        ("info@straße.de", "info@xn--strae-oqa.de"),
        ("info@xn--strae-oqa.de", "info@xn--strae-oqa.de"),
        ("x@ＥＸＡＭＰＬＥ。com", "x@example.com"),  # full-width letters and ideographic full stop map
    ],
)
def test_addresses_are_normalised(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("taro", "must look like name@domain"),
        ("@example.com", "must look like name@domain"),
        ("taro@", "must look like name@domain"),
        ("taro yamada@example.com", "whitespace"),
        ("taro@exa mple.com", "whitespace"),
        ("taro@example", "invalid domain"),
        ("taro@-example.com", "invalid domain"),
        ("taro@example.c0m", "top-level domain"),
        ("taro..y@example.com", "not allowed before the @"),
        ("taro\x00@example.com", "control characters"),
        ("a" * 65 + "@example.com", "longer than 64"),
        ("taro@" + "a" * 250 + ".com", "invalid domain"),
        ("<taro@example.com>", "not allowed before the @"),
        ("taro@example.com\r\nBcc: x@y.z", "whitespace"),
        ("info@stra\u00adsse.de", "invisible"),  # soft hyphen: IDNA 2003 silently dropped it
        ("info@exa\u200bmple.com", "invisible"),  # zero-width space
        ("info@exa\u200dmple.com", "invisible"),  # zero-width joiner
        ("info@\ufeffexample.com", "invisible"),  # byte-order mark
        ("a@xn--zz.com", "invalid internationalised domain"),  # not Punycode of a valid label
        ("a@XN--ZZ.com", "invalid internationalised domain"),
        ("a@example.com..", "invalid domain"),
        ("a@☃.com", "invalid internationalised domain"),  # a symbol IDNA 2008 disallows (2003 allowed it)
    ],
)
def test_malformed_addresses_are_refused_with_a_reason(raw: str, reason: str) -> None:
    with pytest.raises(InvalidEmail, match=reason):
        normalize_email(raw)


def test_non_string_is_refused() -> None:
    with pytest.raises(InvalidEmail, match="must be a string"):
        normalize_email(42)  # type: ignore[arg-type]


def test_pydantic_fields_normalise_and_report_the_field() -> None:
    class Recipient(BaseModel):
        email: EmailAddress

    assert Recipient(email=" A@B.co ").email == "a@b.co"
    with pytest.raises(ValidationError) as caught:
        Recipient(email="nope")
    assert caught.value.errors()[0]["loc"] == ("email",)


def test_request_fields_normalise_and_report_the_field_without_pydantic() -> None:
    assert email_address(" A@B.co ", ("to", 0, "email")) == "a@b.co"
    with pytest.raises(plain.ValidationError) as caught:
        email_address("nope", ("to", 0, "email"))
    assert caught.value.loc == ("to", 0, "email") and "name@domain" in caught.value.msg
    with pytest.raises(plain.ValidationError, match="valid string"):
        email_address(42, ("email",))


def test_an_infobip_sender_name_cannot_become_a_second_address() -> None:
    from martech_bridge.adapters.providers.infobip import _display_name

    assert _display_name("CEO <ceo@bank.example>, x") == '"CEO <ceo@bank.example>, x"'
    assert _display_name('a"b') == '"a\\"b"'
    assert _display_name("山田 商店") == "山田 商店"  # Japanese stays text, as Infobip's examples send it
