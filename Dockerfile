# The monitor's image: `freshness worker`, `freshness api` and `freshness topics create`.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    VIRTUAL_ENV=/app/.venv \
    PATH=/app/.venv/bin:$PATH \
    FRESHNESS_HOME=/var/lib/freshness

RUN pip install --no-cache-dir uv==0.13.9

WORKDIR /app
# Dependencies first (cached layer), then the project itself.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY streams/ streams/
COPY api/ api/
COPY schemas/ schemas/
RUN uv sync --frozen --no-dev

RUN useradd --system --uid 10001 --home-dir /var/lib/freshness --create-home freshness
USER freshness
VOLUME ["/var/lib/freshness"]
EXPOSE 8000
ENTRYPOINT ["freshness"]
CMD ["--help"]
