"""Web Push through the real family service worker, in Chromium (issue 25).

Chromium cannot reach its own push service here, so the page's subscription is the test's: the
test replaces ``PushManager.subscribe`` (an init script) with one returning keys the test made,
and the page's own code posts it. The server's push goes to the test's push service, which
decrypts it with those keys and checks its VAPID JWT; the test then hands the plaintext to the
real service worker over the DevTools protocol (``ServiceWorker.deliverPushMessage``), sees
the notification it shows (``registration.getNotifications()``), dispatches its
``notificationclick`` with the Accept action and sees the page accept the call within the ring
timeout. Screenshots (390x844) in ``test-artifacts/``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from playwright.async_api import CDPSession, Page, expect

from tests.system.push.conftest import PushWorld
from tests.system.push.push_service import Device
from tests.system.web.conftest import PHONE, Pages, WebNode, screenshot
from tests.waiting import eventually

RING_TIMEOUT_S = 20.0

# Replaces the browser's own push subscription with the test's (its keys are the test's).
FAKE_SUBSCRIBE = """
(() => {
  const fake = %s;
  let subscribed = false;
  const subscription = {
    endpoint: fake.endpoint,
    expirationTime: null,
    options: { userVisibleOnly: true },
    toJSON: () => fake,
    getKey: () => null,
    unsubscribe: async () => { subscribed = false; return true; },
  };
  PushManager.prototype.subscribe = async function (options) {
    const key = new Uint8Array(options.applicationServerKey);
    window.__subscribedWith = {
      userVisibleOnly: options.userVisibleOnly,
      key: btoa(String.fromCharCode(...key)).replace(/\\+/g, "-").replace(/\\//g, "_")
        .replace(/=+$/, ""),
    };
    subscribed = true;
    return subscription;
  };
  PushManager.prototype.getSubscription = async function () {
    return subscribed ? subscription : null;
  };
})();
"""

NOTIFICATIONS = """async () => {
  const registration = await navigator.serviceWorker.getRegistration("/family");
  if (!registration) return [];
  return (await registration.getNotifications()).map((n) => ({
    title: n.title, body: n.body, tag: n.tag, requireInteraction: n.requireInteraction,
    actions: n.actions.map((a) => a.action), vibrate: Array.from(n.vibrate || []),
    data: n.data,
  }));
}"""


# A picture of what the service worker showed (headless Chromium draws no system
# notifications): the real notification's title, body and actions, over the page.
SHOW_NOTIFICATION = """(n) => {
  const box = document.createElement("div");
  box.id = "test-notification";
  box.style.cssText = "position:fixed;top:8px;left:8px;right:8px;z-index:99;padding:12px;" +
    "border-radius:14px;background:#fff;box-shadow:0 4px 18px rgba(0,0,0,.3);font:15px system-ui";
  const title = document.createElement("strong");
  title.textContent = n.title;
  const body = document.createElement("div");
  body.textContent = n.body;
  const actions = document.createElement("div");
  actions.style.cssText = "display:flex;gap:8px;margin-top:8px";
  for (const action of n.actions) {
    const button = document.createElement("span");
    button.textContent = action === "accept" ? "Accept" : "Decline";
    button.style.cssText = "flex:1;text-align:center;padding:6px;border-radius:8px;" +
      "background:#e8edf5;font-weight:600";
    actions.append(button);
  }
  box.append(title, body, actions);
  document.body.append(box);
}"""


@pytest.fixture
async def server(world: PushWorld) -> WebNode:
    """The push world's node, for the web tests' ``pages``."""
    return WebNode(world.node.node, world.node.url, world.tokens)


async def registration_id(cdp: CDPSession, scope: str) -> str:
    """The service worker registration of ``scope``, as DevTools names it."""
    found: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def updated(event: dict[str, Any]) -> None:
        for registration in event.get("registrations", []):
            if registration["scopeURL"].endswith(scope) and not registration.get("isDeleted"):
                if not found.done():
                    found.set_result(registration["registrationId"])

    cdp.on("ServiceWorker.workerRegistrationUpdated", updated)
    await cdp.send("ServiceWorker.enable")
    return await asyncio.wait_for(found, 10)


async def notifications(page: Page, count: int = 1) -> list[dict[str, Any]]:
    shown: list[dict[str, Any]] = []

    async def enough() -> bool:
        nonlocal shown
        shown = await page.evaluate(NOTIFICATIONS)
        return len(shown) >= count

    await eventually(enough, lambda: f"{count} notification(s) shown: {shown}", interval_s=0.05)
    return shown


async def deliver(cdp: CDPSession, origin: str, registration: str, payload: dict[str, Any]) -> None:
    await cdp.send(
        "ServiceWorker.deliverPushMessage",
        {"origin": origin, "registrationId": registration, "data": json.dumps(payload)},
    )


async def signed_in_family(pages: Pages, world: PushWorld, device: Device) -> Page:
    page = await pages.open("/family", "family", "PF0", PHONE)
    await expect(page.locator("#push-why")).to_be_visible()  # signed in (then reload)
    await page.context.grant_permissions(["notifications"], origin=world.node.url)
    await page.context.add_init_script(FAKE_SUBSCRIBE % json.dumps(device.subscription()))
    await page.reload()  # now with the test's subscription (the token stays in the tab)
    await expect(page.locator("#push-enable")).to_be_visible()
    return page


async def test_a_push_rings_through_the_service_worker_and_accept_answers(
    pages: Pages, world: PushWorld
) -> None:
    device = world.push.device("chromium")
    page = await signed_in_family(pages, world, device)
    card = page.locator("#devices-card")
    await expect(card.locator("#push-why")).to_contain_text("even when this app is closed")
    await expect(card.locator("#push-devices-empty")).to_be_visible()
    assert await page.evaluate("Notification.permission") != "denied"  # never asked at load
    await card.scroll_into_view_if_needed()
    await screenshot(page, "push-permission-explainer")

    await page.click("#push-enable")
    await expect(card.locator("#push-state")).to_have_text("Call alerts are on for this device.")
    await expect(card.locator("#push-devices li")).to_have_count(1)
    await expect(card.locator("#push-devices li")).to_contain_text("this device")
    subscribed = await page.evaluate("window.__subscribedWith")
    assert subscribed == {"userVisibleOnly": True, "key": world.push.vapid_public_key}
    [listed] = await world.subscriptions("PF0")
    assert listed["endpoint"] == device.endpoint
    await card.scroll_into_view_if_needed()
    await screenshot(page, "push-device-list")

    cdp = await page.context.new_cdp_session(page)
    manifest = await cdp.send("Page.getAppManifest")
    assert manifest["url"].endswith("/static/family.webmanifest")
    assert manifest["errors"] == [], manifest["errors"]
    installability = await cdp.send("Page.getInstallabilityErrors")
    # Installable but for the test's incognito-like browser context.
    assert [e["errorId"] for e in installability["installabilityErrors"]] in ([], ["in-incognito"])
    registration = await registration_id(cdp, "/family")

    tablet = await world.clients.connect("tablet", "P0")
    call_id = await tablet.place("PF0")
    [ring] = await world.push.wait_for(device, "call.incoming")
    assert ring.payload["call_id"] == call_id
    await deliver(cdp, world.node.url, registration, ring.payload)
    [shown] = await notifications(page)
    assert shown["title"] == "Paul Pine 0 is calling"
    assert shown["tag"] == call_id and shown["requireInteraction"] is True
    assert shown["actions"] == ["accept", "decline"]
    assert shown["data"]["call_id"] == call_id
    await expect(page.locator("#incoming")).to_be_visible()  # the page's own socket rings too
    await page.evaluate(SHOW_NOTIFICATION, shown)
    await screenshot(page, "push-ringing")
    await page.evaluate("document.getElementById('test-notification').remove()")

    [worker] = page.context.service_workers
    await worker.evaluate(
        """async (tag) => {
            const [notification] = await self.registration.getNotifications({ tag });
            // A synthetic event: its waitUntil throws, the handler's work still runs.
            self.dispatchEvent(new NotificationEvent("notificationclick",
                { notification, action: "accept" }));
        }""",
        call_id,
    )
    accepted = await tablet.next("call.accepted", timeout=RING_TIMEOUT_S)
    assert accepted["call_id"] == call_id
    await world.push.wait_for(device, "call.canceled")  # the other devices stop ringing
    await tablet.hangup(call_id)


async def test_a_missed_call_replaces_the_ringing_notification_and_remove_a_device(
    pages: Pages, world: PushWorld
) -> None:
    device = world.push.device("chromium")
    page = await signed_in_family(pages, world, device)
    await page.click("#push-enable")
    await expect(page.locator("#push-devices li")).to_have_count(1)
    cdp = await page.context.new_cdp_session(page)
    registration = await registration_id(cdp, "/family")

    tablet = await world.clients.connect("tablet", "P0")
    call_id = await tablet.place("PF0")
    [ring] = await world.push.wait_for(device, "call.incoming", call_id=call_id)
    await deliver(cdp, world.node.url, registration, ring.payload)
    await notifications(page)
    await tablet.request("call.cancel", {"call_id": call_id})
    [missed] = await world.push.wait_for(device, "call.missed", call_id=call_id)
    await deliver(cdp, world.node.url, registration, missed.payload)
    shown: dict[str, Any] = {}

    async def missed_shown() -> bool:
        nonlocal shown
        [shown] = await notifications(page)
        return str(shown["title"]).startswith("Missed")

    await eventually(missed_shown, lambda: f"the missed call shown: {shown}", interval_s=0.05)
    assert shown["title"] == "Missed call from Paul Pine 0" and shown["tag"] == call_id
    assert shown["requireInteraction"] is False and shown["actions"] == []

    # A private preview: the lock screen names nobody.
    async with world.http("PF0") as http:
        body = {"notification_preview": "private"}
        async with http.put("/api/v1/account/settings", json=body) as resp:
            assert resp.status == 200
    call_id = await tablet.place("PF0")
    # This call's ring (a push may come twice: at least once is the rule).
    [ring] = await world.push.wait_for(device, "call.incoming", call_id=call_id)
    await deliver(cdp, world.node.url, registration, ring.payload)
    ringing: list[dict[str, Any]] = []
    every: list[dict[str, Any]] = []

    async def ring_shown() -> bool:
        nonlocal ringing, every
        every = await notifications(page)
        ringing = [n for n in every if n["tag"] == call_id]
        return bool(ringing)

    await eventually(
        ring_shown,
        lambda: f"the private ring of {call_id} shown: {ring.payload}; shown {every}",
        interval_s=0.05,
    )
    assert ringing[0]["title"] == "Incoming video call"
    assert "Paul" not in ringing[0]["body"] and "Pine" not in ringing[0]["body"]
    await tablet.request("call.cancel", {"call_id": call_id})

    await page.click("#push-devices li button")
    await expect(page.locator("#push-devices-empty")).to_be_visible()
    await expect(page.locator("#push-enable")).to_be_visible()
    assert await world.subscriptions("PF0") == []


async def test_opened_from_a_notification_the_page_accepts_the_ringing_call(
    pages: Pages, world: PushWorld
) -> None:
    """No family page open: the service worker opens /family?call=<id>&answer=1 (a synthetic
    click may not open windows, so the test opens that address itself); the new socket gets
    the ringing call's call.incoming and the page accepts it within the ring timeout."""
    device = world.push.device("chromium")
    page = await signed_in_family(pages, world, device)
    await page.click("#push-enable")
    await expect(page.locator("#push-devices li")).to_have_count(1)
    # Signed in on this phone (family-auth.js keeps an e-mail sign-in in localStorage).
    token = world.tokens.issue("family", "PF0")
    await page.evaluate(
        "(t) => localStorage.setItem('visitation.family.token', JSON.stringify({token: t}))",
        token,
    )
    context = page.context
    await page.close()  # the app is closed; its service worker stays registered

    tablet = await world.clients.connect("tablet", "P0")
    call_id = await tablet.place("PF0")
    await world.push.wait_for(device, "call.incoming")
    opened = await context.new_page()
    opened.on("pageerror", lambda exc: pages.errors.append(f"opened: {exc}"))
    await opened.goto(f"/family?call={call_id}&answer=1")
    accepted = await tablet.next("call.accepted", timeout=RING_TIMEOUT_S)
    assert accepted["call_id"] == call_id
    await expect(opened.locator("#incoming")).to_be_hidden()
    assert "call=" not in opened.url  # the page dropped the notification's parameters
    await tablet.hangup(call_id)
