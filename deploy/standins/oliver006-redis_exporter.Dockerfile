# Stand-in for oliver006/redis_exporter:v1.45.*: Debian's prometheus-redis-exporter (1.45),
# at the official image's path, as nobody.
FROM qbuy-standin/bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends prometheus-redis-exporter \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s /usr/bin/prometheus-redis-exporter /redis_exporter
USER nobody
EXPOSE 9121
ENTRYPOINT ["/redis_exporter"]
