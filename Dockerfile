# One image for every role: the API (gunicorn), a worker (`-Q` per queue family), the scheduler or Flower.
#   docker build -t coachup .
#   docker run coachup api | coachup worker -Q assessments | coachup worker -Q stt,tts | coachup beat
#   docker run -e FLOWER_BASIC_AUTH=user:pass coachup flower --address 0.0.0.0
# See docs/deploy.md. Configuration comes from the environment only (coachup/settings.py, README table).

FROM python:3.11-slim AS build
# pycurl (Celery's SQS transport) compiles against libcurl
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc libcurl4-openssl-dev libssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md celeryconfig.py ./
COPY coachup ./coachup
COPY workers ./workers
COPY web ./web
RUN python -m venv /opt/coachup && /opt/coachup/bin/pip install --no-cache-dir ".[all]"

FROM python:3.11-slim
# libcurl for pycurl at run time; flite is the offline TTS voice of the `local` speech provider
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends libcurl4 flite \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/coachup --create-home coachup
COPY --from=build /opt/coachup /opt/coachup
ENV PATH=/opt/coachup/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    COACHUP_API_HOST=0.0.0.0 \
    COACHUP_API_PORT=8000 \
    COACHUP_WORKER_METRICS_HOST=0.0.0.0 \
    COACHUP_WORKER_METRICS_PORT=9540 \
    COACHUP_DATA_DIR=/var/lib/coachup
USER 10001
WORKDIR /var/lib/coachup
# 8000 API, 9540 worker metrics, 5555 Flower
EXPOSE 8000 9540 5555
ENTRYPOINT ["coachup"]
CMD ["api"]
