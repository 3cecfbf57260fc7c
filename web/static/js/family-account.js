// The family's account on the home screen: balance, the video-calls switch, contacts (and
// asking for one), blocked facilities.

import { $, api, el, money, say } from "./common.js";
import { notice, onScreen, state } from "./family-app.js";

const FACILITIES_KEY = "visitation.family.facilities"; // id -> name, learnt from calls

// ---------------------------------------------------------------- account

const facilities = () => JSON.parse(localStorage.getItem(FACILITIES_KEY) || "{}");
export const facilityName = (id) => state.facilityNames[id] || facilities()[id] || id;
export function rememberFacility(id, name) {
  const known = facilities();
  if (id === "all" || (known[id] && !name)) return;
  localStorage.setItem(FACILITIES_KEY, JSON.stringify({ ...known, [id]: name || id }));
}

/** Load the account again (balance, settings, blocks, contacts) and show it. */
export async function refreshAccount() {
  if (!state.token) return;
  try {
    state.account = await api(state.token, "GET", "/api/v1/account");
  } catch (exc) {
    notice("");
    say($("#settings-error"), `Could not load your account: ${exc.message}`);
    return;
  }
  say($("#settings-error"), "");
  renderAccount();
  accountListeners.forEach((fn) => fn(state.account));
}

const accountListeners = [];
/** `fn(account)` after each load of the account (e.g. the identity card). */
export const onAccount = (fn) => accountListeners.push(fn);

onScreen("home", refreshAccount);

function renderAccount() {
  const account = state.account;
  $("#balance").textContent = money(account.balance_cents);
  $("#allow-video").checked = account.allow_video_calls;
  $("#video-hint").textContent = account.allow_video_calls
    ? "Residents can call you."
    : "Calls to you will not ring.";
  const preview = account.notification_preview; // with push (issue 25)
  $("#preview-setting").hidden = preview === undefined;
  $("#private-preview").checked = preview === "private";
  $("#preview-hint").textContent = preview === "private"
    ? "Call alerts say “Incoming call”, without names."
    : "Call alerts show who is calling.";
  renderBlocks(account.blocks || []);
  loadContacts();
}

// ---------------------------------------------------------------- facilities and contacts

const STATUS_LABELS = { approved: "Approved", pending: "Waiting for approval", denied: "Not approved" };

export async function loadFacilities() {
  const { facilities: listed } = await api(state.token, "GET", "/api/v1/facilities");
  state.facilityNames = Object.fromEntries(listed.map((f) => [f.id, f.name]));
  const options = (first) => [
    ...(first ? [el("option", { value: first.value }, first.label)] : []),
    ...listed.map((f) => el("option", { value: f.id }, f.name)),
  ];
  $("#contact-search select").replaceChildren(...options(null));
  $("#block-form select").replaceChildren(...options({ value: "all", label: "All facilities" }));
}

export async function loadContacts() {
  try {
    const { contacts } = await api(state.token, "GET", "/api/v1/account/contacts");
    state.contacts = contacts;
  } catch (exc) {
    say($("#contact-error"), `Could not load your contacts: ${exc.message}`);
    return;
  }
  const items = state.contacts.map((c) => el(
    "li", { "data-resident": c.resident.id },
    el("span", { class: "grow" }, c.resident.name, " ",
      el("small", { class: "muted" }, `${c.facility.name || c.facility.id} · ${c.resident.id}`)),
    el("span", { class: `badge ${c.status === "approved" ? "connected" : c.status === "denied" ? "ended" : ""}` },
      STATUS_LABELS[c.status] || c.status),
  ));
  $("#contacts").replaceChildren(
    ...(items.length ? items : [el("li", { class: "empty" }, "No contacts yet.")]),
  );
}

$("#contact-search").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target.elements;
  say($("#contact-error"), "");
  const query = new URLSearchParams({ facility_id: form.facility.value, q: form.q.value.trim() });
  let residents;
  try {
    ({ residents } = await api(state.token, "GET", `/api/v1/residents?${query}`));
  } catch (exc) {
    say($("#contact-error"), exc.message);
    return;
  }
  const known = new Map((state.contacts || []).map((c) => [c.resident.id, c.status]));
  const items = residents.map((r) => el(
    "li", { "data-resident": r.id },
    el("span", { class: "grow" }, r.name, " ", el("small", { class: "muted" }, r.id)),
    known.has(r.id)
      ? el("span", { class: "muted" }, STATUS_LABELS[known.get(r.id)] || known.get(r.id))
      : el("button", { class: "secondary", onclick: () => askContact(r) }, "Add contact"),
  ));
  $("#resident-results").replaceChildren(
    ...(items.length ? items : [el("li", { class: "empty" }, "Nobody found. Check the spelling or the ID number.")]),
  );
});

async function askContact(resident) {
  say($("#contact-error"), "");
  try {
    await api(state.token, "POST", "/api/v1/account/contacts", { resident_id: resident.id });
  } catch (exc) {
    say($("#contact-error"), exc.message);
    return;
  }
  $("#resident-results").replaceChildren();
  $("#contact-search").elements.q.value = "";
  notice(`Asked to add ${resident.name}. ${facilityName(resident.facility_id)} will approve or decline.`);
  await loadContacts();
}

async function saveSettings(change) {
  say($("#settings-error"), "");
  try {
    state.account = await api(state.token, "PUT", "/api/v1/account/settings", change);
  } catch (exc) {
    say($("#settings-error"), exc.message);
  }
  renderAccount();
}

$("#allow-video").addEventListener("change", (event) =>
  saveSettings({ allow_video_calls: event.target.checked }));
$("#private-preview").addEventListener("change", (event) =>
  saveSettings({ notification_preview: event.target.checked ? "private" : "full" }));

function renderBlocks(blocked) {
  const ids = [...new Set([...blocked, ...Object.keys(facilities())])];
  const items = ids.map((id) => {
    const isBlocked = blocked.includes(id) || blocked.includes("all");
    const label = id === "all" ? "All facilities" : facilityName(id);
    return el(
      "li", { "data-facility": id },
      el("span", { class: "grow" }, label, " ",
        label === id ? null : el("small", { class: "muted" }, id)),
      isBlocked && !blocked.includes(id)
        ? el("span", { class: "muted" }, "blocked (all)")
        : el("button", {
          class: isBlocked ? "secondary" : "danger",
          onclick: () => setBlocked(id, !isBlocked),
        }, isBlocked ? "Unblock" : "Block"),
    );
  });
  $("#blocks").replaceChildren(
    ...(items.length ? items : [el("li", { class: "empty" }, "No facilities blocked.")]),
  );
}

async function setBlocked(facilityId, block) {
  say($("#block-error"), "");
  try {
    const result = block
      ? await api(state.token, "POST", "/api/v1/account/blocks", { facility_id: facilityId })
      : await api(state.token, "DELETE", `/api/v1/account/blocks/${encodeURIComponent(facilityId)}`);
    rememberFacility(facilityId); // stays listed, so it can be unblocked with one tap
    state.account = { ...state.account, blocks: result.blocks };
    renderBlocks(result.blocks);
    return true;
  } catch (exc) {
    say($("#block-error"), exc.message);
    return false;
  }
}

$("#block-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  await setBlocked(event.target.elements.facility.value, true);
});

