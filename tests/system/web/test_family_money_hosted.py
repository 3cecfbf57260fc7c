"""A processor adapter that mounts its own hosted fields (PaymentForm kind ``hosted``), loaded
as ``VISITATION_PAYMENT_PROCESSOR=module:factory``: the family page imports the adapter's
module, the card number stays in it, and the server gets only the adapter's token."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import pytest
from playwright.async_api import Browser, expect

from billing_hooks.money.payments import (
    FakeProcessor,
    PaymentForm,
    PaymentMethod,
    PaymentMethodError,
)
from core.domain import SeedFile
from core.tokens import Tokens
from tests.conftest import SECRET, NodeFactory
from tests.system.web.conftest import Pages, WebNode, api_as, screenshot

SCRIPT = "/static/js/family-payment-hosted-demo.js"


class HostedProcessor(FakeProcessor):
    """The fake processor behind hosted fields: it takes ``{"token": "tok_<last4>"}`` only."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens: list[str] = []

    def payment_form(self) -> PaymentForm:
        return PaymentForm(
            processor="hosted-demo", kind="hosted", title="Card", script_url=SCRIPT,
            config={"processor": "hosted-demo", "label": "Card number (hosted field)"},
        )  # fmt: skip

    async def attach_method(self, family_id: str, submitted: Mapping[str, str]) -> PaymentMethod:
        token = submitted.get("token", "")
        if set(submitted) != {"token"} or not token.startswith("tok_") or len(token) != 8:
            raise PaymentMethodError("invalid_payment_method", "the card could not be read")
        self.tokens.append(token)
        return PaymentMethod(token, "card", token[-4:])


PROCESSOR = HostedProcessor()


def hosted_processor() -> HostedProcessor:
    return PROCESSOR


@pytest.fixture
async def hosted_pages(
    browser: Browser, start_node: NodeFactory, seeded: SeedFile
) -> AsyncIterator[Pages]:
    PROCESSOR.payments.clear()
    PROCESSOR.tokens.clear()
    handle = await start_node(payment_processor=f"{__name__}:hosted_processor")
    opened = Pages(browser, WebNode(handle.node, handle.url, Tokens(SECRET)))
    yield opened
    await opened.close()
    assert not opened.errors, opened.errors


async def test_a_deposit_through_the_adapters_hosted_fields(hosted_pages: Pages) -> None:
    family = await hosted_pages.open("/family", "family", "F1")
    await expect(family.locator("#balance")).to_have_text("$10.00")
    await family.click("#tabs [data-go=deposit]")
    hosted = family.locator("#deposit-method [data-hosted=hosted-demo] input")
    await expect(hosted).to_be_visible()
    await family.fill("#amount", "15")
    await family.click("#deposit-form button[type=submit]")
    await expect(family.locator("#deposit-error")).to_have_text("Enter the card number.")
    await hosted.fill("4242 4242 4242 4242")
    await family.click("#deposit-form button[type=submit]")
    receipt = family.locator("#deposit-receipt")
    await expect(receipt.locator("[data-field=method] dd")).to_have_text("card ending 4242")
    await screenshot(family, "family-deposit-hosted-fields")
    assert PROCESSOR.tokens == ["tok_4242"]  # the server saw the token, not the number
    async with (
        api_as(hosted_pages.server, "family", "F1") as http,
        http.get("/api/v1/account") as response,
    ):
        assert (await response.json())["balance_cents"] == 2500
