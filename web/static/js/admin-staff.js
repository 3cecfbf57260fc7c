// Staff of the admin's facilities on /admin (PROTOCOL v1.2): list, add or change (role,
// facilities, a new password), remove (which also signs them out). Never wider than the
// admin's own scope: the server refuses it, and the page offers only the admin's facilities.
// Also: a resident's PIN for signing in on the facility's shared tablets.

import { $, el, say } from "./common.js";

const ROLES = { monitor: "Monitor", investigator: "Investigator", admin: "Administrator" };
const ALL = "*";

export class StaffAdmin {
  /** `request(method, path, body)`: the API; `self`: this admin's staff id. */
  constructor(request, self) {
    this.request = request;
    this.self = self;
    this.facilities = []; // the admin's facilities: [{id, name}]
    this.wide = false; // the admin's own scope is every facility
    const form = $("#staff-form");
    form.elements.role.replaceChildren(...Object.entries(ROLES).map(([value, label]) => el("option", { value }, label)));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.save();
    });
    $("#staff-new").addEventListener("click", () => this.edit(null));
    $("#staff-cancel").addEventListener("click", () => {
      form.hidden = true;
    });
    $("#pin-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.setPin();
    });
  }

  async load(facilities) {
    if (facilities) this.facilities = facilities;
    say($("#staff-error"), "");
    let staff;
    try {
      ({ staff } = await this.request("GET", "/api/v1/admin/staff"));
    } catch (exc) {
      say($("#staff-error"), `Could not load the staff: ${exc.message}`);
      return;
    }
    const me = staff.find((s) => s.id === this.self);
    this.wide = Boolean(me && me.facility_ids.includes(ALL));
    $("#staff").replaceChildren(...staff.map((s) => this.row(s)));
    $("#no-staff").hidden = staff.length > 0;
  }

  facilityNames(ids) {
    if (ids.includes(ALL)) return "All facilities";
    const names = new Map(this.facilities.map((f) => [f.id, f.name]));
    return ids.map((id) => names.get(id) || id).join(", ");
  }

  row(s) {
    const twoStep = s.otp_enabled ?? s.otp ?? s.two_factor;
    return el(
      "tr", { "data-staff": s.id },
      el("td", {}, ...(s.name ? [s.name, " ", el("small", { class: "muted" }, s.id)] : [s.id])),
      el("td", { class: "role" }, ROLES[s.role] || s.role),
      el("td", { class: "scope" }, this.facilityNames(s.facility_ids || [])),
      el("td", {}, twoStep === undefined ? "—" : twoStep ? "on" : "off"),
      el("td", {}, s.manageable === false
        ? el("small", { class: "muted" }, "managed by an admin of all its facilities")
        : el("div", { class: "row" },
          el("button", { class: "secondary edit", onclick: () => this.edit(s) }, "Edit"),
          twoStep && s.id !== this.self
            ? el("button", { class: "secondary reset-otp", onclick: () => this.resetTwoStep(s) }, "Reset two-step")
            : null,
          s.id === this.self ? null
            : el("button", { class: "danger remove", onclick: () => this.remove(s) }, "Remove"))),
    );
  }

  /** Open the form for `s` (null: a new staff member). */
  edit(s) {
    const form = $("#staff-form");
    form.hidden = false;
    form.dataset.editing = s ? s.id : "";
    $("#staff-form-title").textContent = s ? `Change ${s.id}` : "Add a staff member";
    form.elements.staff_id.value = s ? s.id : "";
    form.elements.staff_id.readOnly = Boolean(s);
    form.elements.role.value = s ? s.role : "monitor";
    form.elements.password.value = "";
    form.elements.password.placeholder = s ? "leave empty to keep the password" : "at least 10 characters";
    const scope = new Set(s ? s.facility_ids : []);
    const boxes = this.facilities.map((f) => el("label", { class: "check" },
      el("input", { type: "checkbox", name: "facility", value: f.id, checked: scope.has(f.id) }), ` ${f.name}`));
    if (this.wide) {
      boxes.unshift(el("label", { class: "check" },
        el("input", { type: "checkbox", name: "facility", value: ALL, checked: scope.has(ALL) }), " All facilities"));
    }
    $("#staff-facilities").replaceChildren(...boxes);
    say($("#staff-form-error"), "");
    (s ? form.elements.role : form.elements.staff_id).focus();
  }

  async save() {
    const form = $("#staff-form");
    const error = $("#staff-form-error");
    say(error, "");
    const id = form.elements.staff_id.value.trim();
    const isNew = !form.dataset.editing;
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(id)) return say(error, "The staff id is 1 to 64 letters, digits, _ . or -.");
    const facilityIds = [...form.querySelectorAll("input[name=facility]:checked")].map((box) => box.value);
    if (!facilityIds.length) return say(error, "Choose at least one facility.");
    const body = { role: form.elements.role.value, facility_ids: facilityIds.includes(ALL) ? [ALL] : facilityIds };
    const password = form.elements.password.value;
    if (password) body.password = password;
    else if (isNew) return say(error, "Give the new staff member a password (at least 10 characters).");
    try {
      await this.request("PUT", `/api/v1/admin/staff/${encodeURIComponent(id)}`, body);
    } catch (exc) {
      return say(error, `Not saved: ${exc.message}`);
    }
    form.hidden = true;
    form.elements.password.value = "";
    say($("#staff-done"), isNew ? `${id} can now sign in.` : `${id} is changed.`);
    await this.load();
    return undefined;
  }

  async remove(s) {
    if (!confirm(`Remove ${s.id}? They are signed out at once and can no longer sign in.`)) return;
    say($("#staff-error"), "");
    try {
      await this.request("DELETE", `/api/v1/admin/staff/${encodeURIComponent(s.id)}`);
    } catch (exc) {
      say($("#staff-error"), `Not removed: ${exc.message}`);
      return;
    }
    say($("#staff-done"), `${s.id} is removed.`);
    await this.load();
  }

  /** Turn `s`'s second factor off (a lost phone): it signs in with its password, enrols again. */
  async resetTwoStep(s) {
    if (!confirm(`Reset ${s.id}'s two-step sign-in? They are signed out and sign in with their password alone until they set it up again.`)) return;
    say($("#staff-error"), "");
    const body = { role: s.role, facility_ids: s.facility_ids, reset_otp: true };
    try {
      await this.request("PUT", `/api/v1/admin/staff/${encodeURIComponent(s.id)}`, body);
    } catch (exc) {
      say($("#staff-error"), `Not reset: ${exc.message}`);
      return;
    }
    say($("#staff-done"), `${s.id}'s two-step sign-in is off until they set it up again.`);
    await this.load();
  }

  async setPin() {
    const form = $("#pin-form");
    const error = $("#pin-error");
    say(error, "");
    say($("#pin-done"), "");
    const resident = form.elements.resident_id.value.trim();
    const pin = form.elements.pin.value;
    if (!resident) return say(error, "Enter the resident's id.");
    if (!/^[0-9]{4,8}$/.test(pin)) return say(error, "A PIN is 4 to 8 digits.");
    try {
      await this.request("PUT", `/api/v1/admin/residents/${encodeURIComponent(resident)}/pin`, { pin });
    } catch (exc) {
      return say(error, `PIN not set: ${exc.message}`);
    }
    form.elements.pin.value = "";
    say($("#pin-done"), `PIN set for ${resident}. They sign in on a shared tablet with their id and this PIN.`);
    return undefined;
  }
}
