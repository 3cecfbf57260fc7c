// WebRTC for the pages (PROTOCOL.md "WebRTC"): one RTCPeerConnection per call, audio then video
// m-line, VP8 and Opus first, the offer sent once ICE gathering is complete (no trickle), with
// the STUN/TURN servers of `session.info` (PROTOCOL.md v1.1) set before gathering starts.

import { clock } from "./common.js";

const CONFIG = { bundlePolicy: "max-bundle", iceServers: [] };
const PREFERRED = { audio: "audio/opus", video: "video/vp8" };

/** Camera and microphone (the SFU forwards what it gets: ask for ~640×360 at 30 fps). */
export function localMedia() {
  return navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: true, noiseSuppression: true },
    video: { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 30 } },
  });
}

export function stopMedia(stream) {
  for (const track of stream ? stream.getTracks() : []) track.stop();
}

/** Put the forwarded codec first (VP8 / Opus); the rest stay as fallbacks, RTX included. */
function prefer(transceiver, kind) {
  const capabilities = RTCRtpReceiver.getCapabilities && RTCRtpReceiver.getCapabilities(kind);
  if (!capabilities || !transceiver.setCodecPreferences) return;
  const first = (c) => c.mimeType.toLowerCase() === PREFERRED[kind];
  const codecs = capabilities.codecs;
  transceiver.setCodecPreferences([...codecs.filter(first), ...codecs.filter((c) => !first(c))]);
}

/** A party's connection: sendrecv audio + video from `stream`; `remote` plays the other party. */
export function partyConnection(stream) {
  const pc = new RTCPeerConnection(CONFIG);
  for (const kind of ["audio", "video"]) {
    const track = stream.getTracks().find((t) => t.kind === kind);
    prefer(pc.addTransceiver(track, { direction: "sendrecv", streams: [stream] }), kind);
  }
  const remote = new MediaStream(pc.getReceivers().map((r) => r.track));
  return { pc, remote };
}

/** A monitor's connection: 2 audio + 2 video recvonly; first pair resident, second family. */
export function monitorConnection() {
  const pc = new RTCPeerConnection(CONFIG);
  const streams = {};
  for (const who of ["resident", "family"]) {
    const tracks = ["audio", "video"].map((kind) => {
      const transceiver = pc.addTransceiver(kind, { direction: "recvonly" });
      prefer(transceiver, kind);
      return transceiver.receiver.track;
    });
    streams[who] = new MediaStream(tracks);
  }
  return { pc, streams };
}

/** Resolves when ICE gathering is complete (or after `timeoutMs`, with what was gathered). */
function gathered(pc, timeoutMs) {
  return new Promise((resolve) => {
    const check = () => {
      if (pc.iceGatheringState !== "complete") return;
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    pc.addEventListener("icegatheringstatechange", check);
    setTimeout(resolve, timeoutMs);
    check();
  });
}

/** Offer with every candidate in it, gathered with `iceServers`; returns the SDP. */
export async function fullOffer(pc, iceServers = [], timeoutMs = 5000) {
  pc.setConfiguration({ ...CONFIG, iceServers });
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc, timeoutMs);
  return pc.localDescription.sdp;
}

export function applyAnswer(pc, sdp) {
  return pc.setRemoteDescription({ type: "answer", sdp });
}

/** Attach a stream to a <video> and start it (a muted retry if autoplay with sound is refused). */
export function play(video, stream) {
  video.srcObject = stream;
  video.play().catch(() => {
    if (video.muted) return;
    video.muted = true;
    video.play().catch(() => {});
    video.dispatchEvent(new CustomEvent("autoplay-muted", { bubbles: true }));
  });
}

/**
 * The in-call countdown: counts from `allowed_seconds` at `call.connected` (on this device's
 * clock, so a skewed clock does not matter) and turns red at `call.warning`.
 * The server ends the call at its cap whatever this shows.
 */
export class CallTimer {
  constructor(element) {
    this.element = element;
    this.interval = null;
  }

  waiting(text = "Connecting…") {
    this.stop();
    this.element.classList.remove("warning");
    this.element.textContent = text;
  }

  start(allowedSeconds) {
    this.stop();
    const deadline = performance.now() + allowedSeconds * 1000;
    const tick = () => {
      const left = (deadline - performance.now()) / 1000;
      this.element.textContent = `${clock(Math.ceil(left))} left`;
    };
    tick();
    this.interval = setInterval(tick, 250);
  }

  warn() {
    this.element.classList.add("warning");
  }

  stop() {
    clearInterval(this.interval);
    this.interval = null;
  }
}

/** A whole party call: media in, remote media out, torn down once. */
export class PartyCall {
  constructor(client, callId, stream, remoteVideo) {
    this.client = client;
    this.callId = callId;
    this.stream = stream;
    const { pc, remote } = partyConnection(stream);
    this.pc = pc;
    play(remoteVideo, remote);
  }

  /** Send `rtc.offer` (after the call is accepted) and apply the answer. */
  async negotiate() {
    const sdp = await fullOffer(this.pc, await this.client.iceServers());
    const answer = await this.client.request("rtc.offer", { call_id: this.callId, sdp });
    await applyAnswer(this.pc, answer.sdp);
  }

  close() {
    this.pc.close();
    stopMedia(this.stream);
  }
}
