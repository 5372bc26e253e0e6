# The s2s image: the `s2s` CLI (issuer: `s2s serve`) and the example services under /app/services.
# No key material is ever copied in (.dockerignore keeps keys/ out of the build context): keys live
# in the key store named by S2S_KEYSTORE (Secrets Manager in compose.yaml).
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

RUN groupadd --system --gid 10001 s2s \
    && useradd --system --uid 10001 --gid s2s --home-dir /home/s2s --create-home --shell /usr/sbin/nologin s2s

# The pinned dependencies first (requirements/image.txt: s2s[aws,msal], what the issuer and the
# example service use), then the library, so that editing s2s/ or services/ reinstalls nothing.
COPY requirements/image.txt ./requirements/image.txt
RUN pip install --no-deps -r requirements/image.txt
COPY pyproject.toml README.md ./
COPY s2s ./s2s
RUN pip install --no-deps .

COPY services ./services
# An empty file store for `docker run` without S2S_KEYSTORE: owned by the service user, 0700,
# and gone with the container (mount a volume here to keep it).
RUN install -d -o s2s -g s2s -m 0700 /app/keys

USER s2s:s2s
EXPOSE 8000

# Both the issuer and the example resource service answer /health; python3 because the slim
# image has no curl.
HEALTHCHECK --interval=10s --timeout=4s --start-period=10s --retries=6 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=3)"]

CMD ["s2s", "serve", "--host", "0.0.0.0", "--port", "8000"]
