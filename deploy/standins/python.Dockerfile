# Stand-in for python:3.11.*-slim-bookworm: Debian's python3.11 where the official can't be pulled.
FROM qbuy-standin/bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s /usr/bin/python3.11 /usr/local/bin/python \
    && ln -s /usr/bin/python3.11 /usr/local/bin/python3
# pip inside builds trusts the CA bundle the base was given (a TLS-intercepting proxy's too).
ENV LANG=C.UTF-8 PIP_CERT=/etc/ssl/certs/ca-certificates.crt
CMD ["python3"]
