// Identity reviews on /admin (PROTOCOL v1.2): families waiting for staff to check their ID
// (front, back) and a recent photo; approve (the family becomes verified) or reject with a
// reason. Images are fetched with the admin's token (every view is audited by the server) and
// shown as data: URLs (the pages' img-src allows data:, not blob:); they are dropped when the
// review closes.

import { $, dateTime, el, say } from "./common.js";

const IMAGES = [["id_front", "ID — front"], ["id_back", "ID — back"], ["selfie", "Recent photo"]];

/** A Blob as a data: URL. */
function dataUrl(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error || new Error("could not read the image"));
    reader.readAsDataURL(blob);
  });
}

/** "image/jpeg" or "image/png" from the first bytes (whatever the Content-Type says), or "". */
async function sniff(blob) {
  const head = new Uint8Array(await blob.slice(0, 4).arrayBuffer());
  if (head[0] === 0xff && head[1] === 0xd8) return "image/jpeg";
  if (head[0] === 0x89 && head[1] === 0x50 && head[2] === 0x4e && head[3] === 0x47) return "image/png";
  return "";
}

export class IdentityReviews {
  /** `request(method, path, body)`: JSON API calls; `token()`: the admin's bearer token. */
  constructor(request, token) {
    this.request = request;
    this.token = token;
    this.open = null; // the review on screen: {family_id, name, email}
    $("#identity-approve").addEventListener("click", () => this.decide("verified"));
    $("#identity-reject").addEventListener("submit", (event) => {
      event.preventDefault();
      this.decide("rejected");
    });
    $("#identity-close").addEventListener("click", () => this.close());
  }

  async load() {
    say($("#identity-error"), "");
    let reviews;
    try {
      ({ reviews } = await this.request("GET", "/api/v1/admin/identity?status=pending"));
    } catch (exc) {
      say($("#identity-error"), `Could not load the identity reviews: ${exc.message}`);
      return;
    }
    $("#identity-reviews").replaceChildren(...reviews.map((r) => this.row(r)));
    $("#no-identity").hidden = reviews.length > 0;
    $("#identity-count").textContent = reviews.length ? `${reviews.length} waiting` : "";
  }

  row(r) {
    return el(
      "tr", { "data-family": r.family_id },
      el("td", {}, dateTime(r.submitted_at)),
      el("td", {}, r.name || r.family_id, " ", el("small", { class: "muted" }, r.family_id)),
      el("td", {}, r.email || "—"),
      el("td", {}, el("button", { class: "secondary review", onclick: () => this.show(r) }, "Review")),
    );
  }

  async image(familyId, kind) {
    const response = await fetch(`/api/v1/admin/identity/${encodeURIComponent(familyId)}/${kind}`, {
      headers: { Authorization: `Bearer ${this.token()}` },
    });
    if (!response.ok) {
      const data = await response.json().catch(() => ({}));
      throw new Error(data.error?.message || `HTTP ${response.status}`);
    }
    const blob = await response.blob();
    const type = await sniff(blob);
    if (!type) throw new Error("this is not a JPEG or PNG image");
    return dataUrl(new Blob([blob], { type }));
  }

  async show(review) {
    this.close();
    this.open = review;
    const panel = $("#identity-panel");
    panel.hidden = false;
    $("#identity-who").textContent = `${review.name || review.family_id}${review.email ? ` · ${review.email}` : ""}`;
    $("#identity-reason").value = "";
    say($("#identity-panel-error"), "");
    const figures = IMAGES.map(([kind, caption]) => {
      const img = el("img", { alt: `${caption} of ${review.name || review.family_id}`, "data-kind": kind });
      const status = el("small", { class: "muted" }, "Loading…");
      const figure = el("figure", { "data-kind": kind }, img, el("figcaption", {}, caption, " ", status));
      this.image(review.family_id, kind).then(
        (url) => {
          if (this.open !== review) return;
          img.src = url;
          status.textContent = "";
        },
        (exc) => {
          status.textContent = `could not load: ${exc.message}`;
          status.className = "error";
        },
      );
      return figure;
    });
    $("#identity-images").replaceChildren(...figures);
    panel.scrollIntoView({ block: "nearest" });
  }

  async decide(status) {
    const review = this.open;
    if (!review) return;
    const error = $("#identity-panel-error");
    say(error, "");
    const reason = $("#identity-reason").value.trim();
    if (status === "rejected" && !reason) {
      say(error, "Say why the ID is rejected: the family reads this and may send new pictures.");
      $("#identity-reason").focus();
      return;
    }
    const body = status === "rejected" ? { status, reason } : { status };
    try {
      await this.request("PUT", `/api/v1/admin/identity/${encodeURIComponent(review.family_id)}`, body);
    } catch (exc) {
      say(error, `Not saved: ${exc.message}`);
      return;
    }
    this.close();
    say($("#identity-done"), status === "verified"
      ? `${review.name || review.family_id} is verified.`
      : `${review.name || review.family_id}'s ID was rejected; they can send new pictures.`);
    await this.load();
  }

  /** Close the review and drop its images from the page. */
  close() {
    this.open = null;
    $("#identity-images").replaceChildren();
    $("#identity-panel").hidden = true;
  }
}
