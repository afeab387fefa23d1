# dicomcache: the cache server on its embedded memory backend.
# Build: docker build -t dicomcache .
# Run (off loopback, the server demands TLS and authenticated callers; see README "Security"):
#   docker run -p 50051:50051 -v "$PWD/tls:/tls:ro" \
#     -e DICOMCACHE_TLS_CERT_FILE=/tls/tls.crt -e DICOMCACHE_TLS_KEY_FILE=/tls/tls.key \
#     -e DICOMCACHE_TLS_CLIENT_CA_FILE=/tls/ca.crt dicomcache
# As a Kubernetes sidecar, set DICOMCACHE_LISTEN=127.0.0.1:50051 instead: loopback needs none.
FROM python:3.11.10-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY constraints.txt pyproject.toml README.md ./
COPY protos ./protos
COPY server ./server
COPY client ./client
RUN pip install --constraint constraints.txt . \
    && useradd --system --no-create-home --uid 10001 dicomcache

USER 10001
EXPOSE 50051
# In a container the server must listen beyond loopback to be reached from outside,
# which it refuses without TLS and authentication (or an explicit
# DICOMCACHE_ALLOW_INSECURE=true). Every other setting comes from DICOMCACHE_*
# variables or flags appended to `docker run`.
ENV DICOMCACHE_LISTEN=0.0.0.0:50051
ENTRYPOINT ["dicomcache", "serve"]
