# syntax=docker/dockerfile:1.7
# One image for every Driftwatch workload: ingest, evaluator, API and the migration Job.
#   docker build -t driftwatch:0.1.0 .                      # base install (no torch)
#   docker build --build-arg EXTRAS=s3,ml -t driftwatch:0.1.0-ml .
# The chart sets the command (`driftwatch ingest|evaluate|api|db upgrade`); tini is PID 1 so
# SIGTERM reaches the worker and finishes the batch in flight.
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
WORKDIR /src
RUN pip install --no-cache-dir "build==1.2.2"
COPY pyproject.toml README.md ./
COPY monitor ./monitor
COPY ingest ./ingest
COPY retrain ./retrain
COPY dashboards ./dashboards
RUN python -m build --wheel --outdir /wheels

FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
# Extras of the wheel to install: s3 (object-store registry), ml (torch, ONNX: retraining).
ARG EXTRAS=s3
# torch comes first, pinned, from its CPU index; never an unpinned torch.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DRIFTWATCH_CONFIG=/etc/driftwatch/driftwatch.yaml
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini=0.19.* \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 driftwatch \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/driftwatch --create-home driftwatch
COPY --from=build /wheels /wheels
RUN case ",${EXTRAS}," in *,ml,*) pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}" ;; esac \
    && pip install "$(ls /wheels/driftwatch-*.whl)[${EXTRAS}]" \
    && rm -rf /wheels \
    && driftwatch db --help > /dev/null
USER 10001:10001
WORKDIR /var/lib/driftwatch
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('DRIFTWATCH_API__PORT', '8000') + '/healthz', timeout=4)"]
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["driftwatch", "serve"]
