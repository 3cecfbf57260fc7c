"""Transcripts of sealed recordings, full-text search, watch words and alerts (PROTOCOL v1.2).

- After the seal (never before, never on a media path) the node queues the recording
  (:class:`transcripts.service.TranscriptService.on_sealed`, a recorder sealed hook) on a
  Dramatiq queue in the deployment's Redis (:mod:`transcripts.queue`).
- Transcription workers (``python -m transcripts.worker``; :class:`transcripts.pool.TranscriberPool`
  spawns local ones) decode each party's audio (:mod:`transcripts.audio`), run the engine
  (:mod:`transcripts.engine`: pocketsphinx by default, Vosk with a model), sign the transcript
  with the recording's hash inside (:mod:`transcripts.signing`), store it
  (:mod:`transcripts.store`), flag watch words on the recording and raise alerts.
- Each node searches with SQLite FTS5 fed from the stored transcripts (:mod:`transcripts.index`);
  the recorder asks through :class:`recorder.transcript_port.TranscriptPort` for ``?q=`` and
  ``verify``; :mod:`transcripts.http_api` serves the transcript and the alerts.
"""
