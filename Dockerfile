# gan-server container image: a build stage with Debian's -dev packages, a runtime stage with only
# the shared libraries the binaries link (derived from ldd + dpkg -S in the build stage).
#
#   docker build -t gan-server:dev .            # or: bash scripts/build_image.sh (docker or podman)
#   scripts/make_secrets.sh secrets && sudo chown -R 10001 secrets
#   docker run -p 50051:50051 -p 9464:9464 -v gan-data:/var/lib/gan \
#     -v "$PWD/secrets:/run/secrets/gan:ro" gan-server:dev
#
# Build args: FASHION_MNIST=1 (default) installs Debian's dataset-fashion-mnist (~30 MB) into the
# runtime image; FASHION_MNIST=0 leaves it out (jobs can still use `synthetic` and datasets under
# /var/lib/gan/datasets/). RUN_TESTS=1 (default) builds and runs the tests labelled `unit`.
# With podman, keep `--format docker`: the OCI format drops HEALTHCHECK.

############################ build ############################
FROM debian:bookworm-slim AS build
ARG RUN_TESTS=1
ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /src
# Dependencies first (cached while only the sources change): setup.sh without options installs
# the build-and-run group only (no Prometheus, Python or PyTorch). It installs ocl-icd-opencl-dev
# explicitly: libdnnl-dev's CMake config needs it and --no-install-recommends would skip it.
COPY scripts/setup.sh scripts/setup.sh
RUN bash scripts/setup.sh && rm -rf /var/lib/apt/lists/*
COPY . .
# Only the two service binaries and the tests labelled `unit` (in-process, no servers) are built:
# the unit_tests target of tests/CMakeLists.txt. gan-bench, gan-train and the `e2e` tests, which
# start gan-server, ganctl and Prometheus as processes, are not needed here.
RUN set -eux; \
    cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=ON; \
    targets="gan-server ganctl"; if [ "$RUN_TESTS" = 1 ]; then targets="$targets unit_tests"; fi; \
    cmake --build /build -j2 --target $targets
RUN set -eux; \
    if [ "$RUN_TESTS" = 1 ]; then \
      cd /build && ctest --output-on-failure -j2 --timeout 300 -L unit; \
    fi
# Stage the binaries and the list of Debian packages that own every shared library they load.
RUN set -eux; \
    mkdir -p /out/bin; \
    cp /build/bin/gan-server /build/bin/ganctl /out/bin/; \
    strip --strip-unneeded /out/bin/gan-server /out/bin/ganctl; \
    ldd /out/bin/gan-server /out/bin/ganctl | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u \
      | while read -r lib; do dpkg -S "*/$(basename "$lib")" | cut -d: -f1; done \
      | sort -u > /out/runtime-packages; \
    cat /out/runtime-packages

############################ runtime ############################
FROM debian:bookworm-slim AS runtime
ARG FASHION_MNIST=1
ENV DEBIAN_FRONTEND=noninteractive
COPY --from=build /out/runtime-packages /tmp/runtime-packages
# Typically: libdnnl2 libgomp1 libgrpc++1.51 libgrpc29 libprotobuf32 libabsl20220623 libsqlite3-0
# libpq5 (the PostgreSQL job store, --job_store=postgresql://...)
# libpng16-16 zlib1g libprometheus-cpp-pull1.0 libprometheus-cpp-core1.0 libonnx1 (gan-server's
# ONNX export links libonnx.so.1 and libonnx_proto.so.1) libstdc++6 libc6 ...
RUN set -eux; \
    apt-get update -q; \
    extra=""; if [ "$FASHION_MNIST" = 1 ]; then extra="dataset-fashion-mnist"; fi; \
    apt-get install -y -q --no-install-recommends $(cat /tmp/runtime-packages) $extra; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /tmp/runtime-packages
COPY --from=build /out/bin/ /usr/local/bin/
RUN set -eux; \
    if ldd /usr/local/bin/gan-server /usr/local/bin/ganctl | grep 'not found'; then exit 1; fi; \
    groupadd --system --gid 10001 gan; \
    useradd --system --uid 10001 --gid gan --home-dir /var/lib/gan --no-create-home \
      --shell /usr/sbin/nologin gan; \
    mkdir -p /var/lib/gan; chown gan:gan /var/lib/gan; chmod 0750 /var/lib/gan
USER 10001:10001
WORKDIR /var/lib/gan
VOLUME ["/var/lib/gan"]
EXPOSE 50051 9464
# Secure by default: TLS and bearer tokens from secrets mounted at /run/secrets/gan (server.pem,
# server.key, tokens, and ca.pem for the health check); scripts/make_secrets.sh makes a set for
# local use. Health needs no token, but it speaks TLS like every call.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["ganctl", "--server", "localhost:50051", "--tls_ca", "/run/secrets/gan/ca.pem", \
       "--deadline_seconds", "3", "health"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["gan-server"]
CMD ["--listen=0.0.0.0:50051", "--data_dir=/var/lib/gan", "--metrics_listen=0.0.0.0:9464", \
     "--tls_cert=/run/secrets/gan/server.pem", "--tls_key=/run/secrets/gan/server.key", \
     "--auth_tokens=/run/secrets/gan/tokens"]
