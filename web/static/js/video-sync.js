// Several <video>s of one recording played as one: the leader (it has the controls) drives,
// the followers copy its play, pause, seek, speed and volume, and a follower that drifts more
// than `maxDriftS` from the leader is put back in step.

export const MAX_DRIFT_S = 0.3;

/** Keep `followers` in step with `leader`; returns a function that stops doing so. */
export function syncVideos(leader, followers, { maxDriftS = MAX_DRIFT_S } = {}) {
  const loaded = (video) =>
    video.getAttribute("src") && video.readyState >= HTMLMediaElement.HAVE_METADATA;
  const align = (video, always = false) => {
    if (!loaded(video)) return;
    const target = Math.min(leader.currentTime, video.duration || Infinity);
    if (always || Math.abs(video.currentTime - target) > maxDriftS) video.currentTime = target;
  };
  const play = (video) => {
    if (!leader.paused && video.paused && !video.ended) video.play().catch(() => {});
  };
  const handlers = {
    play: (video) => {
      align(video, true);
      play(video);
    },
    playing: (video) => {
      align(video);
      play(video);
    },
    pause: (video) => {
      video.pause();
      align(video, true);
    },
    waiting: (video) => video.pause(), // the leader is buffering: wait for it
    seeking: (video) => align(video, true),
    timeupdate: (video) => {
      // Not while the follower is still seeking or buffering: a new seek would restart it.
      if (!video.seeking && video.readyState >= HTMLMediaElement.HAVE_FUTURE_DATA) align(video);
      play(video);
    },
    ratechange: (video) => {
      video.playbackRate = leader.playbackRate;
    },
    volumechange: (video) => {
      video.volume = leader.volume;
      video.muted = leader.muted;
    },
    loadedmetadata: (video) => align(video, true),
  };
  const listeners = Object.entries(handlers).map(([event, handler]) => {
    const listener = () => followers.forEach(handler);
    leader.addEventListener(event, listener);
    return [event, listener];
  });
  // A follower that loads after the leader moved starts where the leader is.
  const onFollowerLoaded = (event) => {
    align(event.target, true);
    play(event.target);
  };
  for (const video of followers) video.addEventListener("loadedmetadata", onFollowerLoaded);
  return () => {
    for (const [event, listener] of listeners) leader.removeEventListener(event, listener);
    for (const video of followers) video.removeEventListener("loadedmetadata", onFollowerLoaded);
  };
}
