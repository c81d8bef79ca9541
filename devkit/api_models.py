"""The pydantic models that describe the API's bodies in openapi.json (devkit/openapi.py). The functions
do not import pydantic (~60 ms of each cold start): they check the same rules by hand (models/mail.py,
models/subscription.py), and tests/unit/test_request_models.py holds the two to the same verdicts."""

import base64
import binascii
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from martech_bridge.models.email import EMAIL_JSON_SCHEMA, normalize_email
from martech_bridge.models.subscription import SuppressionKind
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

EmailAddress = Annotated[str, AfterValidator(normalize_email), WithJsonSchema(EMAIL_JSON_SCHEMA)]

ProviderName = Literal["sendgrid", "braze", "infobip"]
# Braze's rule for external_send_id, applied to every provider: it is our 24 h dedupe key too.
_DERIVED_SEND_ID = re.compile(r"d_[0-9a-f]{24}(-[0-9]+)?")


def _not_derived(value: str) -> str:
    # The form the bridge derives itself (`<dispatch id>-<n>`) is reserved: postbacks find recipients by it.
    if _DERIVED_SEND_ID.fullmatch(value):
        raise ValueError("an external_send_id of the form d_<24 hex>-<n> is reserved for the bridge's own")
    return value


ExternalSendId = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"^[a-zA-Z0-9\-_+/=]+$"), AfterValidator(_not_derived)
]
# A subject and a display name become mail headers: no line break (or NUL) can start another one.
HEADER_TEXT = r"^[^\r\n\x00]+$"
DisplayName = Annotated[str, Field(min_length=1, max_length=256, pattern=HEADER_TEXT)]
_DISPLAY_NAME = {"type": "string", "minLength": 1, "maxLength": 256}


def _present(name: str) -> dict[str, Any]:
    """JSON Schema: the field is given and not null."""
    return {"required": [name], "properties": {name: {"not": {"type": "null"}}}}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Address(_Model):
    email: EmailAddress
    name: DisplayName | None = None


class UserAlias(_Model):
    alias_name: Annotated[str, Field(min_length=1, max_length=256)]
    alias_label: Annotated[str, Field(min_length=1, max_length=256)]


class Recipient(_Model):
    """One recipient. An e-mail address is what the bridge checks subscriptions by; a recipient without
    one is reported `invalid`, never sent (KARTE's rule)."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={"not": {"allOf": [_present("user_id"), _present("user_alias")]}},
    )

    email: EmailAddress | None = None
    name: Annotated[DisplayName, WithJsonSchema({**_DISPLAY_NAME, "pattern": "^[^;,\\r\\n\\x00]+$"})] | None = None
    user_id: Annotated[str, Field(min_length=1, max_length=512)] | None = None  # Braze external_user_id
    user_alias: UserAlias | None = None  # Braze
    attributes: dict[str, Any] = Field(default_factory=dict)  # Braze profile attributes
    data: dict[str, Any] = Field(default_factory=dict)  # per-recipient template data

    @field_validator("user_alias")
    @classmethod
    def _one_braze_identity(cls, alias: UserAlias | None, info: ValidationInfo) -> UserAlias | None:
        if alias is not None and info.data.get("user_id") is not None:
            raise ValueError("give either user_id or user_alias, not both (Braze takes exactly one)")
        return alias

    @field_validator("name")
    @classmethod
    def _no_separators(cls, name: str | None) -> str | None:
        if name and any(ch in name for ch in ";,"):
            raise ValueError("a recipient name cannot contain ';' or ',' (SendGrid refuses them)")
        return name


class Attachment(_Model):
    filename: Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[^/\\\x00-\x1f]+$")]
    content: Annotated[
        str, Field(min_length=1, pattern=r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")
    ]  # base64
    type: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.+-]+/[A-Za-z0-9_.+-]+$")] = "application/octet-stream"
    disposition: Literal["attachment", "inline"] = "attachment"
    # Names an inline image for `cid:` in the HTML; Infobip uses it as the image's file name (WIRE-FORMATS 4.3).
    content_id: Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[^/\\\x00-\x1f\x7f]+$")] | None = None

    @field_validator("content")
    @classmethod
    def _base64(cls, content: str) -> str:
        try:
            base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("content must be base64") from None
        return content


# The checks below (model and providers' validate()) stated for openapi.json, so a request the schema
# allows is one the bridge accepts.
_MAIL_RULES: dict[str, Any] = {
    "anyOf": [_present("template_id"), {**_present("subject"), "anyOf": [_present("text"), _present("html")]}],
    "allOf": [
        {  # SendGrid (also the default provider, unless DEFAULT_PROVIDER says otherwise): ASCII categories,
            # no ';', ',' or line break in an attachment's filename, no ';' or line break in its content_id
            "if": {"properties": {"provider": {"enum": ["sendgrid", None]}}},
            "then": {
                "properties": {
                    "categories": {"items": {"pattern": "^[\\x00-\\x7f]*$"}},
                    "attachments": {
                        "items": {
                            "properties": {
                                "filename": {"pattern": "^[^;,\\r\\n]*$"},
                                "content_id": {"anyOf": [{"type": "null"}, {"pattern": "^[^;\\r\\n]*$"}]},
                            }
                        }
                    },
                }
            },
        },
        {  # Braze sends through a transactional campaign, without attachments, to a Braze identity
            "if": {"required": ["provider"], "properties": {"provider": {"const": "braze"}}},
            "then": {
                "required": ["template_id"],
                "properties": {
                    "template_id": {"not": {"type": "null"}},
                    "attachments": {"maxItems": 0},
                    "to": {
                        "items": {
                            "if": _present("email"),
                            "then": {"anyOf": [_present("user_id"), _present("user_alias")]},
                        }
                    },
                },
            },
        },
        {  # Infobip's templateId is a number
            "if": {"required": ["provider"], "properties": {"provider": {"const": "infobip"}}},
            "then": {"properties": {"template_id": {"anyOf": [{"pattern": "^[0-9]+$"}, {"type": "null"}]}}},
        },
    ],
}


class MailRequest(_Model):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, json_schema_extra=_MAIL_RULES)

    provider: ProviderName | None = None
    to: list[Recipient] = Field(min_length=1, max_length=1000)
    sender: Address | None = Field(default=None, alias="from")
    reply_to: Address | None = None
    subject: Annotated[str, Field(min_length=1, max_length=998, pattern=HEADER_TEXT)] | None = None
    text: Annotated[str, Field(min_length=1)] | None = None
    html: Annotated[str, Field(min_length=1)] | None = None
    template_id: Annotated[str, Field(min_length=1, max_length=128)] | None = None  # Braze: the campaign id
    template_data: dict[str, Any] = Field(default_factory=dict)  # SendGrid dynamic data / Braze trigger props
    attachments: list[Attachment] = Field(default_factory=list, max_length=100)
    track_opens: bool | None = None
    track_clicks: bool | None = None
    categories: list[Annotated[str, Field(min_length=1, max_length=255)]] = Field(
        default_factory=list, max_length=10, json_schema_extra={"uniqueItems": True}
    )
    metadata: dict[Annotated[str, Field(min_length=1, max_length=100)], str] = Field(default_factory=dict)
    external_send_id: ExternalSendId | None = None

    @model_validator(mode="after")
    def _content(self) -> "MailRequest":
        if self.template_id is None:
            if not self.subject:
                raise ValueError("subject is required unless a template_id is given")
            if not (self.text or self.html):
                raise ValueError("text or html is required unless a template_id is given")
        if len(set(self.categories)) != len(self.categories):
            raise ValueError("categories must be unique")
        emails = [r.email for r in self.to if r.email]
        if len(set(emails)) != len(emails):
            raise ValueError("each recipient address may appear once")
        return self


# `pending`: not sent yet within the request's deadline; the bridge's send queue sends it shortly.
RecipientStatus = Literal["accepted", "pending", "suppressed", "invalid", "failed", "unknown"]


class RecipientResult(BaseModel):
    email: str | None  # null for a recipient given without an address (it is `invalid`)
    message_id: str
    status: RecipientStatus
    reason: str | None = None
    provider_message_id: str | None = None
    provider: str | None = None  # set when not the message's own: the fallback that sent this recipient


Reason = Annotated[str, Field(min_length=1, max_length=500)]
Source = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[a-z0-9_.:-]+$")]


class SubscriptionUpdate(BaseModel):
    """Body of `PUT /subscriptions/{email}`. Re-subscribing is explicit: `subscribed: true` clears suppression."""

    # The validator below, stated for openapi.json.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "if": {"properties": {"subscribed": {"const": True}}},
            "then": {"properties": {"suppression": {"type": "null"}}},
        },
    )

    subscribed: StrictBool
    reason: Reason | None = None
    suppression: SuppressionKind | None = None

    @model_validator(mode="after")
    def _suppression_only_when_unsubscribed(self) -> "SubscriptionUpdate":
        if self.subscribed and self.suppression is not None:
            raise ValueError("suppression can only be set with subscribed=false")
        return self


class Subscription(BaseModel):
    """The current state, as stored and as answered by the API."""

    email: EmailAddress
    subscribed: bool
    suppression: SuppressionKind | None = None
    reason: str | None = None
    source: Source = "api"
    changed_at: datetime
    version: int = Field(default=1, ge=1)
    # After a re-subscription: each configured provider's release from its own suppression lists
    # ("pending" until done; then "removed", "not_listed", "cleared" - a list that cannot be asked was cleared
    # regardless, Braze's spam list - or "failed").
    release: dict[str, str] | None = None


class SubscriptionChange(BaseModel):
    """One entry of a recipient's history."""

    subscribed: bool
    suppression: SuppressionKind | None = None
    reason: str | None = None
    source: Source
    changed_at: datetime
    previous_subscribed: bool | None = None
    released: dict[str, str] | None = None  # a provider's release, as its own history entry
