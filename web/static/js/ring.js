// The ring of an incoming call on an open page: the ringtone (looping until stopped), the
// phone's vibration, a flashing title and a screen-reader announcement.
//
// Browsers play sound only after the person has interacted with the page (the autoplay rule).
// So the sound is "armed" at the first tap or key press: the <audio> element plays muted for
// an instant inside that gesture, which lets it play later (iOS Safari counts per element).
// If the ring still cannot play, `hint` says "Tap anywhere to hear the ring", and the next tap
// starts it.

const TITLE = "📞 Incoming call…";
const VIBRATION = [700, 300, 700]; // ms on, off, on; repeated every cycle
const CYCLE_MS = 3000; // ring.wav is one 3 s cadence
const FLASH_MS = 1000;

export class Ring {
  /**
   * `audio`: a looping `<audio>` with the ringtone; `announce`: an `aria-live="assertive"`
   * region; `hint`: shown when the sound is blocked until the next tap.
   */
  constructor({ audio, announce, hint }) {
    this.audio = audio;
    this.announce = announce;
    this.hint = hint;
    this.ringing = false;
    this.armed = false;
    this.timers = [];
    this.title = document.title;
    this.audio.loop = true;
    const onGesture = () => this.gesture();
    for (const type of ["pointerdown", "keydown", "touchend"]) {
      document.addEventListener(type, onGesture, { capture: true, passive: true });
    }
  }

  /** Ring for `text` (what the announcement says, e.g. "Incoming call from Rita West"). */
  start(text) {
    if (this.ringing) this.stop();
    this.ringing = true;
    document.body.dataset.ringing = "true"; // the page's own sign (style.css)
    this.title = document.title;
    this.audio.muted = false;
    this.audio.currentTime = 0;
    this.play();
    this.vibrate();
    this.every(CYCLE_MS, () => this.vibrate());
    let flash = true;
    document.title = TITLE;
    this.every(FLASH_MS, () => {
      flash = !flash;
      document.title = flash ? TITLE : this.title;
    });
    // A live region announces changes: empty first, then the text a moment later (a timer,
    // not an animation frame: those never come in a background tab).
    this.announce.textContent = "";
    setTimeout(() => {
      if (this.ringing) this.announce.textContent = text;
    }, 50);
  }

  /** Stop the sound, the vibration and the flashing title; clear the announcement. */
  stop() {
    if (!this.ringing) return;
    this.ringing = false;
    delete document.body.dataset.ringing;
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    this.audio.pause();
    this.audio.currentTime = 0;
    if (navigator.vibrate && navigator.userActivation?.hasBeenActive !== false) navigator.vibrate(0);
    document.title = this.title;
    this.announce.textContent = "";
    this.hint.hidden = true;
  }

  /** Whether the sound is playing now (false while it waits for a tap). */
  get audible() {
    return this.ringing && !this.audio.paused && !this.audio.muted;
  }

  // ---------------------------------------------------------------- internals

  play() {
    const started = this.audio.play();
    this.hint.hidden = true;
    started?.catch((exc) => {
      // NotAllowedError: the autoplay rule; the next tap plays it (see gesture()). An
      // AbortError means stop() paused it first: nothing to say then.
      if (this.ringing && exc?.name !== "AbortError") this.hint.hidden = false;
    });
  }

  vibrate() {
    // Not on iOS; refused before the person has tapped the page (Chrome then logs an error):
    // only once the page has been used.
    if (navigator.userActivation && !navigator.userActivation.hasBeenActive) return;
    try {
      navigator.vibrate?.(VIBRATION);
    } catch {
      // ignored: vibration is a bonus
    }
  }

  every(ms, fn) {
    this.timers.push(setInterval(fn, ms));
  }

  /** A tap or key press: play now if ringing, else arm the element for later. */
  gesture() {
    if (this.ringing) {
      if (this.audio.paused) {
        this.play();
        this.vibrate();
      }
      this.armed = true;
      return;
    }
    if (this.armed) return;
    this.armed = true;
    const audio = this.audio;
    audio.muted = true;
    const primed = audio.play();
    const settle = () => {
      if (this.ringing) {
        audio.muted = false; // a call arrived meanwhile: let it ring
        return;
      }
      audio.pause();
      audio.currentTime = 0;
      audio.muted = false;
    };
    if (primed) primed.then(settle, () => {
      this.armed = false; // not allowed yet: try again at the next gesture
      settle();
    });
    else settle();
  }
}
