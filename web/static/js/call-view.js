// The in-call screen the family app and the resident tablet share: the other party's video,
// your own, the countdown, the status line and "Hang up". The page keeps an empty
// `<section class="screen call" id="incall">`; this module builds and runs it.

import { $, duration, el } from "./common.js";
import { showQuality, qualityBadge } from "./quality.js";
import { CallTimer, PartyCall, play, stopMedia } from "./rtc.js";

function video(attrs, muted) {
  const node = el("video", { autoplay: true, playsinline: true, ...attrs });
  node.muted = muted; // the property: a `muted` attribute added after creation is not enough
  return node;
}

function build(section) {
  section.replaceChildren(
    el("div", { class: "stage" },
      video({ class: "remote", id: "remote-video" }, false),
      el("div", { class: "overlay", id: "call-overlay" }, "Connecting…"),
      el("span", { class: "timer", id: "timer" }),
      Object.assign(qualityBadge(), { id: "call-quality" }),
      video({ class: "self", id: "self-video" }, true), // never hear yourself
    ),
    el("div", { class: "bar" },
      el("div", { class: "grow" },
        el("div", { id: "call-with" }),
        el("div", { class: "status", id: "call-status" }),
      ),
      el("button", { class: "danger", id: "hangup" }, "Hang up"),
    ),
  );
}

/** One call at a time on the screen: `open`, `start` its media, then `close`. */
export class CallView {
  constructor(section = $("#incall")) {
    build(section);
    this.timer = new CallTimer($("#timer", section));
    this.remote = $("#remote-video", section);
    this.self = $("#self-video", section);
    this.overlay = $("#call-overlay", section);
    this.hangupButton = $("#hangup", section);
    this.qualityBadge = $("#call-quality", section);
    this.call = null; // {client, callId, party (a PartyCall once media starts)}
    this.remote.addEventListener("playing", () => {
      this.overlay.hidden = true;
    });
    section.addEventListener("autoplay-muted", () => this.say("Tap the video to hear the call"));
    this.remote.addEventListener("click", () => {
      this.remote.muted = false;
    });
    this.hangupButton.addEventListener("click", () => this.hangup());
  }

  /** The call on the screen, or null. */
  get callId() {
    return this.call?.callId ?? null;
  }

  say(text) {
    $("#call-status").textContent = text;
  }

  /** Show call `callId` with `who` (a caption), connecting. */
  open(client, callId, who) {
    this.call = { client, callId, party: null };
    $("#call-with").textContent = who;
    this.say("Connecting…");
    this.overlay.hidden = false;
    this.hangupButton.disabled = false;
    this.timer.waiting("");
  }

  /** Send `stream` (camera and microphone) and play the other party; hang up if it fails. */
  async start(stream) {
    const call = this.call;
    if (!call) return stopMedia(stream); // the call ended meanwhile
    call.party = new PartyCall(call.client, call.callId, stream, this.remote);
    play(this.self, stream);
    try {
      await call.party.negotiate();
    } catch (exc) {
      this.fail(exc);
    }
  }

  /** The media could not start: say why and hang up. */
  fail(exc) {
    this.say(`Video could not start: ${exc.message}`);
    const call = this.call;
    call?.client.request("call.hangup", { call_id: call.callId }).catch(() => {});
  }

  /** `call.connected`: the countdown from `allowedSeconds`. */
  connected(allowedSeconds) {
    this.timer.start(allowedSeconds);
    this.say(`Connected · up to ${duration(allowedSeconds)}`);
  }

  /** `call.warning`: one minute left. */
  warning() {
    this.timer.warn();
    this.say("One minute left");
  }

  /** `call.quality`: `mine` (this side's connection), `theirs` (the other party's). */
  quality(mine, theirs) {
    const weak = (q) => q?.level === "fair" || q?.level === "poor";
    if (weak(mine) || !weak(theirs)) showQuality(this.qualityBadge, mine);
    else showQuality(this.qualityBadge, theirs, " (other side)");
  }

  async hangup() {
    const call = this.call;
    if (!call) return;
    this.hangupButton.disabled = true;
    try {
      await call.client.request("call.hangup", { call_id: call.callId });
    } catch (exc) {
      this.say(exc.message);
      this.hangupButton.disabled = false;
    }
  }

  /** The call is over (or never started): stop its media and the countdown. */
  close() {
    const call = this.call;
    this.call = null;
    this.timer.stop();
    showQuality(this.qualityBadge, null);
    call?.party?.close();
    this.remote.srcObject = null;
    this.self.srcObject = null;
  }
}
