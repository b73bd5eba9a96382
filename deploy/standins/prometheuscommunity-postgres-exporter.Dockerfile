# Stand-in for prometheuscommunity/postgres-exporter:v0.11.*: Debian's
# prometheus-postgres-exporter (0.11), under the official image's binary name, as nobody.
FROM qbuy-standin/bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends prometheus-postgres-exporter \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s prometheus-postgres-exporter /usr/bin/postgres_exporter
USER nobody
EXPOSE 9187
ENTRYPOINT ["/bin/postgres_exporter"]
