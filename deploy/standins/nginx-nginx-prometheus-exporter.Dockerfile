# Stand-in for nginx/nginx-prometheus-exporter:0.11.*: Debian's prometheus-nginx-exporter
# (0.11), under the official image's binary name, as nobody.
FROM qbuy-standin/bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends prometheus-nginx-exporter \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s prometheus-nginx-exporter /usr/bin/nginx-prometheus-exporter
USER nobody
EXPOSE 9113
ENTRYPOINT ["/usr/bin/nginx-prometheus-exporter"]
