# The same installation as `make setup && make models`, in an image.
FROM python:3.11-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /var/lib/obscura obscura

WORKDIR /opt/obscura
COPY pyproject.toml README.md ./
COPY daemon ./daemon
RUN pip install --no-cache-dir .

USER obscura
ENV OBSCURA_MODEL_DIR=/var/lib/obscura/models
RUN obscura models fetch

ENTRYPOINT ["obscura"]
CMD ["models", "list"]
