# dicomcache: the cache server on its embedded memory backend.
# Build: docker build -t dicomcache .   Run: docker run -p 50051:50051 dicomcache
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
# In a container the server must listen beyond loopback; every other setting
# comes from DICOMCACHE_* variables or flags appended to `docker run`.
ENV DICOMCACHE_LISTEN=0.0.0.0:50051
ENTRYPOINT ["dicomcache", "serve"]
