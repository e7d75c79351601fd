# Turnout's container image: `turnout serve` as a non-root user, config and database on volumes.
#   podman build -t turnout .        (or docker build; `make image-test` builds and runs it)
# PYTHON_IMAGE is any Debian-based image with Python 3.11+ and venv; where no registry is reachable,
# `make image-test` builds one from Debian packages (image/base.sh) and passes it here.
ARG PYTHON_IMAGE=docker.io/library/python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/turnout
# Only what the package needs: a change to tests or docs does not rebuild this layer.
COPY pyproject.toml README.md LICENSE /src/
COPY controlplane /src/controlplane
COPY adapters /src/adapters
COPY dataplane /src/dataplane
COPY probes /src/probes
RUN /opt/turnout/bin/pip install "/src[tracing]" && /opt/turnout/bin/turnout --version

FROM ${PYTHON_IMAGE}
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/turnout --create-home --shell /usr/sbin/nologin turnout \
    && mkdir -p /etc/turnout && chown turnout:turnout /etc/turnout
COPY --from=build /opt/turnout /opt/turnout
ENV PATH=/opt/turnout/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TURNOUT_READYZ_URL=http://127.0.0.1:8701/readyz
# /etc/turnout: turnout.yaml (mount it read-only); /var/lib/turnout: the SQLite database
# (database.url: "sqlite:////var/lib/turnout/turnout.db"), unused with PostgreSQL.
VOLUME ["/etc/turnout", "/var/lib/turnout"]
WORKDIR /var/lib/turnout
USER 10001:10001
# data plane (OpenAI-compatible API), control plane (status API, /metrics, /readyz); the config must listen on
# 0.0.0.0 inside the container (server.data.host, server.control.host).
EXPOSE 8700 8701
# Ready = the store answers and a routing table is loaded (GET /readyz on the control port); set
# TURNOUT_READYZ_URL when the config moves the control port.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['TURNOUT_READYZ_URL'], timeout=2)"]
ENTRYPOINT ["turnout", "serve"]
CMD ["-c", "/etc/turnout/turnout.yaml"]
