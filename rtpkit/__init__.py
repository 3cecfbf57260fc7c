"""RTP over aiortc: peer connections that carry RTP packets (no jitter buffer, no codec), the
VP8/RTP helpers and frame assembly, the synchronous SRTP path, delay histograms and RTCP
report bookkeeping. Depends on aiortc only: the SFU (media), the recorder and the client SDK use it."""
