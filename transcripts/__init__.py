"""Transcripts of sealed recordings, their search and watch words (PROTOCOL v1.2 "Transcripts and watch words")."""
