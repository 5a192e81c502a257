# The container image configs/k8s-cronjob.yaml runs:
#
#   docker build -t registry.example.com/tools/swr-crawler:latest .
#   docker push registry.example.com/tools/swr-crawler:latest
#
# A slim Python base, the project and its runtime dependencies only (no test
# tools), a non-root user, swr-crawler as the entrypoint:
#   docker run --rm -e SWR_AUTH_TOKEN registry.example.com/tools/swr-crawler:latest \
#     crawl --region cn-north-4 --targets /data/targets.txt --out /data/out
# tests/test_container.py checks that this file and the CronJob agree.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY crawler ./crawler
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
LABEL org.opencontainers.image.title="swr-crawler" \
      org.opencontainers.image.description="Bulk crawler of Huawei Cloud SWR tag details into Parquet" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-compile /wheels/*.whl && rm -rf /wheels \
    && useradd --uid 10001 --user-group --no-create-home --home-dir /data --shell /usr/sbin/nologin swr
USER 10001:10001
WORKDIR /data
ENTRYPOINT ["swr-crawler"]
CMD ["--help"]
