# The monitor's image: `freshness worker`, `freshness api`, `freshness alerter` and
# `freshness topics create`. Two stages: the locked environment (uv.lock, no dev
# dependencies) is built with the project installed as a wheel, not editable; the runtime
# stage gets only that environment, no source tree.
FROM python:3.11-slim-bookworm AS build

ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never

RUN pip install --no-cache-dir uv==0.13.9

WORKDIR /app
# Dependencies first (cached layer), then the project itself.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-editable --no-install-project
COPY streams/ streams/
COPY api/ api/
COPY schemas/ schemas/
RUN uv sync --frozen --no-dev --no-editable

FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/app/.venv \
    PATH=/app/.venv/bin:$PATH \
    FRESHNESS_HOME=/var/lib/freshness

COPY --from=build /app/.venv /app/.venv
RUN useradd --system --uid 10001 --home-dir /var/lib/freshness --create-home freshness
USER freshness
WORKDIR /var/lib/freshness
VOLUME ["/var/lib/freshness"]
EXPOSE 8000
ENTRYPOINT ["freshness"]
CMD ["--help"]
