"""`POST /mail/send`: one request model in front of SendGrid, Braze and Infobip, and its answer."""

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal, Self

from martech_bridge.models import plain
from martech_bridge.models.email import email_address
from martech_bridge.models.plain import Loc, optional, string

# entrypoints/send.py: "d_" + 24 hex digits, from the idempotency key or from time (12) + random (12).
DISPATCH_ID_PATTERN = r"^d_[0-9a-f]{24}$"
ProviderName = Literal["sendgrid", "braze", "infobip"]
PROVIDER_NAMES: tuple[str, ...] = ("sendgrid", "braze", "infobip")
# Braze's rule for external_send_id, applied to every provider: it is our 24 h dedupe key too.
_DERIVED_SEND_ID = re.compile(r"d_[0-9a-f]{24}(-[0-9]+)?")
TRANSACTIONAL = "transactional"
# A Lambda behind API Gateway takes at most 6 MB of request; base64 makes attachments a third larger.
MAX_ATTACHMENT_BYTES = 4 * 1024 * 1024
# The whole of `metadata` as JSON. It is stored in the message's head item (DynamoDB's 400 KB item limit) and
# sent as SendGrid custom_args (10,000 bytes in older docs, 50,000 now: WIRE-FORMATS 1.2).
MAX_METADATA_BYTES = 10_000

# The field rules, as devkit/api_models.py states them for openapi.json (tests/unit/test_request_models.py
# holds the two to the same verdicts).
EXTERNAL_SEND_ID = plain.pattern(r"^[a-zA-Z0-9\-_+/=]+$")
FILENAME = plain.pattern(r"^[^/\\\x00-\x1f]+$")
BASE64 = plain.pattern(r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")
# ASCII, not \w: Python's \w and pydantic's (Rust) differ outside ASCII, and a media type is ASCII (RFC 6838).
MEDIA_TYPE = plain.pattern(r"^[A-Za-z0-9_.+-]+/[A-Za-z0-9_.+-]+$")
CONTENT_ID = plain.pattern(r"^[^/\\\x00-\x1f\x7f]+$")
# A subject and a display name become mail headers (Infobip's `from` is "name <address>" text): no line break
# (or NUL) can start another header.
HEADER_TEXT = plain.pattern(r"^[^\r\n\x00]+$")


def _any_dict(value: Any, loc: Loc) -> dict[str, Any]:
    return plain.mapping(value, loc)


def _display_name(value: Any, loc: Loc) -> str:
    return string(value, loc, min_length=1, max_length=256, match=HEADER_TEXT)


def _external_send_id(value: Any, loc: Loc) -> str:
    value = string(value, loc, min_length=1, max_length=128, match=EXTERNAL_SEND_ID)
    # The form the bridge derives itself (`<dispatch id>-<n>`) is reserved: postbacks find recipients by it.
    if _DERIVED_SEND_ID.fullmatch(value):
        raise plain.value_error(loc, "an external_send_id of the form d_<24 hex>-<n> is reserved for the bridge's own")
    return value


@dataclass(slots=True)
class Address(plain.Record):
    email: str
    name: str | None = None

    def __post_init__(self) -> None:
        self.email = email_address(self.email, ("email",))  # a configured default is checked as a caller's is

    @classmethod
    def model_validate(cls, data: Any, loc: Loc = ()) -> Self:
        data = plain.fields(data, loc, cls.__name__)
        email = email_address(plain.required(data, "email", loc), (*loc, "email"))
        name = optional(_display_name, data.get("name"), (*loc, "name"))
        plain.no_extra(data, ("email", "name"), loc)
        return cls(email, name)


@dataclass(slots=True)
class UserAlias(plain.Record):
    alias_name: str
    alias_label: str

    @classmethod
    def model_validate(cls, data: Any, loc: Loc = ()) -> Self:
        data = plain.fields(data, loc, cls.__name__)
        name = string(plain.required(data, "alias_name", loc), (*loc, "alias_name"), min_length=1, max_length=256)
        label = string(plain.required(data, "alias_label", loc), (*loc, "alias_label"), min_length=1, max_length=256)
        plain.no_extra(data, ("alias_name", "alias_label"), loc)
        return cls(name, label)


_RECIPIENT_FIELDS = ("email", "name", "user_id", "user_alias", "attributes", "data")


@dataclass(slots=True)
class Recipient(plain.Record):
    """One recipient. An e-mail address is what the bridge checks subscriptions by; a recipient without
    one is reported `invalid`, never sent (KARTE's rule)."""

    email: str | None = None
    name: str | None = None
    user_id: str | None = None  # Braze external_user_id
    user_alias: UserAlias | None = None  # Braze
    attributes: dict[str, Any] = field(default_factory=dict)  # Braze profile attributes
    data: dict[str, Any] = field(default_factory=dict)  # per-recipient template data

    @classmethod
    def model_validate(cls, data: Any, loc: Loc = ()) -> Self:
        data = plain.fields(data, loc, cls.__name__)
        email = optional(email_address, data.get("email"), (*loc, "email"))
        name = optional(_display_name, data.get("name"), (*loc, "name"))
        if name and any(ch in name for ch in ";,"):
            raise plain.value_error(
                (*loc, "name"), "a recipient name cannot contain ';' or ',' (SendGrid refuses them)"
            )
        user_id = optional(string, data.get("user_id"), (*loc, "user_id"), min_length=1, max_length=512)
        alias = data.get("user_alias")
        user_alias = None if alias is None else UserAlias.model_validate(alias, (*loc, "user_alias"))
        if user_alias is not None and user_id is not None:
            raise plain.value_error(
                (*loc, "user_alias"), "give either user_id or user_alias, not both (Braze takes exactly one)"
            )
        attributes = _any_dict(data.get("attributes", {}), (*loc, "attributes"))
        values = _any_dict(data.get("data", {}), (*loc, "data"))
        plain.no_extra(data, _RECIPIENT_FIELDS, loc)
        return cls(email, name, user_id, user_alias, attributes, values)


_ATTACHMENT_FIELDS = ("filename", "content", "type", "disposition", "content_id")


@dataclass(slots=True)
class Attachment(plain.Record):
    filename: str
    content: str  # base64
    type: str = "application/octet-stream"
    disposition: Literal["attachment", "inline"] = "attachment"
    # Names an inline image for `cid:` in the HTML; Infobip uses it as the image's file name (WIRE-FORMATS 4.3).
    content_id: str | None = None

    @classmethod
    def model_validate(cls, data: Any, loc: Loc = ()) -> Self:
        data = plain.fields(data, loc, cls.__name__)
        filename = string(
            plain.required(data, "filename", loc), (*loc, "filename"), min_length=1, max_length=255, match=FILENAME
        )
        content = string(plain.required(data, "content", loc), (*loc, "content"), min_length=1, match=BASE64)
        try:
            base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise plain.value_error((*loc, "content"), "content must be base64") from None
        kind = string(data.get("type", "application/octet-stream"), (*loc, "type"), match=MEDIA_TYPE)
        disposition = plain.literal(
            data.get("disposition", "attachment"), (*loc, "disposition"), ("attachment", "inline")
        )
        content_id = optional(
            string, data.get("content_id"), (*loc, "content_id"), min_length=1, max_length=255, match=CONTENT_ID
        )
        plain.no_extra(data, _ATTACHMENT_FIELDS, loc)
        return cls(filename, content, kind, disposition, content_id)  # type: ignore[arg-type]

    @property
    def size(self) -> int:
        return len(base64.b64decode(self.content))


_MAIL_FIELDS = (
    "provider", "to", "from", "sender", "reply_to", "subject", "text", "html", "template_id", "template_data",
    "attachments", "track_opens", "track_clicks", "categories", "metadata", "external_send_id",
)  # fmt: skip
_MAIL_FIELDS_GIVEN_FROM = tuple(f for f in _MAIL_FIELDS if f != "sender")


@dataclass(slots=True)
class MailRequest(plain.Record):
    provider: ProviderName | None = None
    to: list[Recipient] = field(default_factory=list)
    sender: Address | None = field(default=None, metadata={"alias": "from"})
    reply_to: Address | None = None
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    template_id: str | None = None  # Braze: the campaign id
    template_data: dict[str, Any] = field(default_factory=dict)  # SendGrid dynamic data / Braze trigger props
    attachments: list[Attachment] = field(default_factory=list)
    track_opens: bool | None = None
    track_clicks: bool | None = None
    categories: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    external_send_id: str | None = None

    @classmethod
    def model_validate(cls, data: Any) -> Self:
        """The request, checked field by field in order; ValidationError names the first problem."""
        data = plain.fields(data, (), cls.__name__)
        provider = optional(plain.literal, data.get("provider"), ("provider",), choices=PROVIDER_NAMES)
        to = [
            Recipient.model_validate(r, ("to", i))
            for i, r in enumerate(plain.items(plain.required(data, "to", ()), ("to",), min_length=1, max_length=1000))
        ]
        # `from` (the alias) or `sender` (the name): pydantic's populate_by_name, which the alias wins.
        sender_key = "from" if "from" in data else "sender"
        sender = data.get(sender_key)
        sender = None if sender is None else Address.model_validate(sender, (sender_key,))
        reply = data.get("reply_to")
        reply_to = None if reply is None else Address.model_validate(reply, ("reply_to",))
        subject = optional(string, data.get("subject"), ("subject",), min_length=1, max_length=998, match=HEADER_TEXT)
        text = optional(string, data.get("text"), ("text",), min_length=1)
        html = optional(string, data.get("html"), ("html",), min_length=1)
        template_id = optional(string, data.get("template_id"), ("template_id",), min_length=1, max_length=128)
        template_data = _any_dict(data.get("template_data", {}), ("template_data",))
        attachments = [
            Attachment.model_validate(a, ("attachments", i))
            for i, a in enumerate(plain.items(data.get("attachments", []), ("attachments",), max_length=100))
        ]
        track_opens = optional(plain.boolean, data.get("track_opens"), ("track_opens",))
        track_clicks = optional(plain.boolean, data.get("track_clicks"), ("track_clicks",))
        categories = [
            string(c, ("categories", i), min_length=1, max_length=255)
            for i, c in enumerate(plain.items(data.get("categories", []), ("categories",), max_length=10))
        ]
        metadata = _metadata(data.get("metadata", {}))
        external_send_id = optional(_external_send_id, data.get("external_send_id"), ("external_send_id",))
        # With both given, pydantic takes `from` and counts `sender` as an unknown field.
        plain.no_extra(data, _MAIL_FIELDS if sender_key == "sender" else _MAIL_FIELDS_GIVEN_FROM, ())
        request = cls(
            provider,  # type: ignore[arg-type]
            to,
            sender,
            reply_to,
            subject,
            text,
            html,
            template_id,
            template_data,
            attachments,
            track_opens,
            track_clicks,
            categories,
            metadata,
            external_send_id,
        )
        request._check_content()
        return request

    def _check_content(self) -> None:
        if self.template_id is None:
            if not self.subject:
                raise plain.value_error((), "subject is required unless a template_id is given")
            if not (self.text or self.html):
                raise plain.value_error((), "text or html is required unless a template_id is given")
        if len(set(self.categories)) != len(self.categories):
            raise plain.value_error((), "categories must be unique")
        emails = [r.email for r in self.to if r.email]
        if len(set(emails)) != len(emails):
            raise plain.value_error((), "each recipient address may appear once")

    @property
    def transactional(self) -> bool:
        return TRANSACTIONAL in self.categories

    def oversized(self) -> tuple[str, str] | None:
        """(field, why) for the first part that is larger than the bridge can send and record, else None.
        Checked before any provider call: a record that cannot be written after the mail went out is a
        mail that is sent again."""
        total = sum(a.size for a in self.attachments)
        if total > MAX_ATTACHMENT_BYTES:
            return "attachments", f"attachments total {total} bytes; the bridge accepts at most {MAX_ATTACHMENT_BYTES}"
        metadata = len(json.dumps(self.metadata, ensure_ascii=False).encode("utf-8"))
        if metadata > MAX_METADATA_BYTES:
            return "metadata", f"metadata is {metadata} bytes as JSON; the bridge keeps at most {MAX_METADATA_BYTES}"
        return None


def _metadata(value: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, item in plain.mapping(value, ("metadata",)).items():
        out[string(key, ("metadata", key, "[key]"), min_length=1, max_length=100)] = string(item, ("metadata", key))
    return out


# `pending`: not sent yet within the request's deadline; the bridge's send queue sends it shortly.
RecipientStatus = Literal["accepted", "pending", "suppressed", "invalid", "failed", "unknown"]
RECIPIENT_STATUSES: tuple[str, ...] = ("accepted", "pending", "suppressed", "invalid", "failed", "unknown")
_RESULT_FIELDS = ("email", "message_id", "status", "reason", "provider_message_id", "provider")


@dataclass(slots=True)
class RecipientResult(plain.Record):
    email: str | None  # null for a recipient given without an address (it is `invalid`)
    message_id: str
    status: RecipientStatus
    reason: str | None = None
    provider_message_id: str | None = None
    provider: str | None = None  # set when not the message's own: the fallback that sent this recipient

    model_fields = _RESULT_FIELDS  # the names, as pydantic's class attribute lists them

    @classmethod
    def model_validate(cls, data: Any) -> Self:
        """From a stored item or a kept answer; ValidationError (a ValueError) when it is not one."""
        data = plain.fields(data, (), cls.__name__)
        return cls(
            optional(string, plain.required(data, "email", ()), ("email",)),
            string(plain.required(data, "message_id", ()), ("message_id",)),
            plain.literal(plain.required(data, "status", ()), ("status",), RECIPIENT_STATUSES),  # type: ignore[arg-type]
            optional(string, data.get("reason"), ("reason",)),
            optional(string, data.get("provider_message_id"), ("provider_message_id",)),
            optional(string, data.get("provider"), ("provider",)),
        )

    def answer(self) -> dict[str, Any]:
        """As the API answers it: optional fields left out when empty, `email` always there."""
        return {"email": self.email, **self.model_dump(exclude_none=True)}
