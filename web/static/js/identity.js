// "Verify your identity": the family photographs the front and back of an ID and a selfie
// (the phone's camera through <input type=file capture>), sees them, and sends them as one
// multipart form to POST /api/v1/account/identity (PROTOCOL.md v1.2). The facility reviews it.

import { $, api, say, upload } from "./common.js";

const LIMIT = 5 * 1024 * 1024; // bytes per image (PROTOCOL.md: ≤ 5 MiB each)
const SENDABLE = new Set(["image/jpeg", "image/png"]);
const MAX_SIDE = 2560; // px: a re-encoded photo stays legible and well under the limit
const FIELDS = ["id_front", "id_back", "selfie"];
const SUBMITTED = "Submitted — the facility will review it.";

/** The identity card on the home screen: `render(account)` shows the form or the status. */
export class IdentityCard {
  constructor(token, form = $("#identity-card"), status = $("#identity-status")) {
    this.token = token;
    this.form = form;
    this.status = status;
    this.error = $("#identity-error", form);
    this.photos = {}; // field -> the Blob to send
    for (const input of form.querySelectorAll("input[type=file]")) {
      input.addEventListener("change", () => this.picked(input));
    }
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
  }

  /**
   * `account` from GET /api/v1/account: `verified` (SPEC rule 1) where the server reports it;
   * the review's state comes from GET /api/v1/account/identity (`identity`: "none",
   * "pending", "verified" or "rejected", with a `reason`). Where neither answers, a
   * submission made from this browser counts as pending.
   */
  async render(account) {
    this.familyId = account.family_id;
    let review = account.identity ? { identity: account.identity, reason: account.identity_reason } : null;
    if (account.verified !== true && !review) {
      try {
        review = await api(this.token, "GET", "/api/v1/account/identity");
      } catch {
        review = null; // not offered by this server
      }
    }
    const status = review?.identity ?? localStorage.getItem(this.key());
    if (account.verified === true || status === "verified") {
      localStorage.removeItem(this.key());
      this.form.hidden = true;
      this.status.hidden = true;
    } else if (status === "pending") {
      this.showStatus(SUBMITTED);
    } else {
      this.status.hidden = true;
      this.form.hidden = false;
      const why = review?.reason ? ` (${review.reason})` : "";
      $("#identity-intro", this.form).textContent = status === "rejected"
        ? `The facility could not verify your ID${why}. Please take the photos again.`
        : "Before residents can call you, the facility checks your ID once. Take three photos: "
          + "the front and the back of an official ID, and a recent photo of yourself.";
    }
  }

  key() {
    return `visitation.family.identity.${this.familyId}`;
  }

  showStatus(text) {
    this.form.hidden = true;
    this.status.hidden = false;
    $("p", this.status).textContent = text;
  }

  async picked(input) {
    const field = input.name;
    const preview = input.parentElement.querySelector("img");
    delete this.photos[field];
    preview.hidden = true;
    say(this.error, "");
    const [file] = input.files;
    if (!file) return;
    let photo;
    try {
      photo = await sendable(file);
    } catch (exc) {
      input.value = "";
      return say(this.error, exc.message);
    }
    this.photos[field] = photo;
    preview.src = await dataUrl(photo); // the page's policy allows data: images, not blob:
    preview.alt = input.parentElement.querySelector("span").textContent;
    preview.hidden = false;
  }

  async submit() {
    say(this.error, "");
    const missing = FIELDS.filter((field) => !this.photos[field]);
    if (missing.length) {
      const names = missing.map((field) =>
        this.form.querySelector(`input[name=${field}]`).parentElement.querySelector("span")
          .textContent.toLowerCase());
      return say(this.error, `Add a photo of each: ${names.join(", ")}.`);
    }
    const body = new FormData();
    for (const field of FIELDS) {
      const photo = this.photos[field];
      body.append(field, photo, `${field}.${photo.type === "image/png" ? "png" : "jpg"}`);
    }
    const button = this.form.querySelector("button[type=submit]");
    button.disabled = true;
    button.textContent = "Sending…";
    try {
      await upload(this.token, "/api/v1/account/identity", body);
    } catch (exc) {
      return say(this.error, `Could not send the photos: ${exc.message}`);
    } finally {
      button.disabled = false;
      button.textContent = "Send for review";
    }
    localStorage.setItem(this.key(), "pending");
    this.photos = {};
    this.form.reset();
    for (const img of this.form.querySelectorAll("img")) img.hidden = true;
    this.showStatus(SUBMITTED);
  }
}

/**
 * The photo to send: a JPEG or PNG within the limit as it is; any other picture the browser
 * can read (HEIC on some phones, WebP, a huge camera JPEG) re-encoded as a JPEG, at most
 * MAX_SIDE px on a side (which also drops its metadata, location included).
 */
async function sendable(file) {
  if (SENDABLE.has(file.type) && file.size <= LIMIT) return file;
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    throw new Error(`“${file.name}” is not a photo this browser can read. Use a JPEG or PNG picture.`);
  }
  const scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(bitmap.width * scale);
  canvas.height = Math.round(bitmap.height * scale);
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  const jpeg = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.88));
  if (!jpeg || jpeg.size > LIMIT) throw new Error(`“${file.name}” is too large (over 5 MB).`);
  return jpeg;
}

function dataUrl(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}
