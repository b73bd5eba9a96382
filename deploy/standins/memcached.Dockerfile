# Stand-in for memcached:1.6.*-bookworm: Debian's memcached, as the memcache user.
FROM qbuy-standin/bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends memcached \
    && rm -rf /var/lib/apt/lists/*
USER memcache
EXPOSE 11211
CMD ["memcached"]
