// The family app's shared state and navigation between its screens (family.js starts it).

import { $, say, show } from "./common.js";

/** What the signed-in page knows: the token, the socket client, the account, the ringing call. */
export const state = {
  token: null,
  client: null,
  account: null,
  incoming: null, // the call.incoming payload while it rings
  contacts: [],
  facilityNames: {},
};

const TABS = ["home", "history", "deposit"];
const entered = {}; // screen -> [what to do on entering it]

/** `fn()` runs each time `screen` is shown (e.g. the home screen refreshes the balance). */
export function onScreen(screen, fn) {
  (entered[screen] ??= []).push(fn);
}

/** Show `screen`; the tabs only on the account's own screens. */
export function go(screen) {
  show(screen);
  $("#tabs").hidden = !TABS.includes(screen);
  for (const tab of document.querySelectorAll("#tabs button")) {
    if (tab.dataset.go === screen) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  for (const fn of entered[screen] ?? []) fn();
}

/** Post the home screen's notice ("Added $10.00", "Missed call from …"). */
export const notice = (text) => say($("#home-notice"), text);

document.addEventListener("click", (event) => {
  const target = event.target.closest("[data-go]");
  if (target) go(target.dataset.go);
});

// A notice is about the last thing that happened: the next action clears it (before that
// action's own handler may post a new one).
for (const type of ["click", "submit", "change"]) {
  document.addEventListener(type, (event) => {
    if (event.target.closest?.("button, input, select, form, [data-go]")) notice("");
  }, true);
}
