# sim-engine as a small, non-root image (issue 15). Build: docker build -t sim-engine .
# Stage 1 builds the wheel; stage 2 installs it alone on a slim Python, without
# compilers or the source tree, and runs as an unprivileged user.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --create-home --home-dir /data sim
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER sim
WORKDIR /data
VOLUME /data
# An always-on run by default; every option and scenario field can be changed with
# SIM_ENGINE_<OPTION> / SIM_ENGINE__SECTION__FIELD (docs/always-on.md).
ENV SIM_ENGINE_OUT=/data/run \
    SIM_ENGINE_RESUME_IF_EXISTS=true \
    SIM_ENGINE_DURATION=forever \
    SIM_ENGINE_SPEED=1 \
    SIM_ENGINE_DASHBOARD=false \
    SIM_ENGINE_METRICS_HOST=0.0.0.0 \
    SIM_ENGINE_METRICS_PORT=9464 \
    PYTHONUNBUFFERED=1
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=4)"]
ENTRYPOINT ["sim-engine"]
CMD ["run"]
