# The routerscope sidecar. Built by docker-compose.yml; no torch, no extras beyond [sidecar].
# Off loopback the sidecar requires a token: pass ROUTERSCOPE_SIDECAR_TOKEN in the environment
# (or mount a file and add --token-file), never --token (it shows in the process list).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY routerscope ./routerscope
RUN pip install --no-cache-dir ".[sidecar]" \
 && useradd --system --uid 10001 routerscope \
 && mkdir -p /var/lib/routerscope \
 && chown routerscope /var/lib/routerscope
USER routerscope
EXPOSE 4318 4317
HEALTHCHECK --interval=10s --timeout=3s --retries=5 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:4318/healthz', timeout=2)"]
ENTRYPOINT ["routerscope", "sidecar"]
CMD ["--listen", "0.0.0.0:4318", "--grpc-listen", "0.0.0.0:4317", "--upstream", "http://otel-collector:4318", "--spool", "/var/lib/routerscope/spool"]
