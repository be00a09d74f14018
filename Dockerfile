# The subgate gateway: a static binary on scratch.
#
#   docker build -t subgate .
#   docker run --rm -p 8080:8080 -e SUBGATE_JWT_SECRET=... subgate
#
# Every `subgate serve` flag has a SUBGATE_* twin (SUBGATE_ADDR,
# SUBGATE_MAX_CONNS, SUBGATE_LOG_FORMAT...), so the image is configured with
# `-e` alone. GO_IMAGE picks the build stage's Go; .ci/image builds one
# from the machine's own toolchain under the same name, with no registry.

ARG GO_IMAGE=docker.io/library/golang:1.26.8-bookworm

FROM ${GO_IMAGE} AS build
# GOTOOLCHAIN=local: an image whose Go is older than go.mod wants fails
# here instead of downloading another toolchain; -mod=readonly: the build
# never rewrites go.mod or go.sum.
ENV CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly
WORKDIR /src
# The modules first, in their own layer: it is rebuilt only when go.mod or
# go.sum change, not on every source edit.
COPY go.mod go.sum ./
RUN go mod download && go mod verify
COPY . .
RUN go build -trimpath -ldflags='-s -w' -o /out/subgate ./cmd/subgate

FROM scratch
LABEL org.opencontainers.image.title="subgate" \
      org.opencontainers.image.description="Multi-subprotocol WebSocket RPC gateway (json-rpc, msgpack, binary-raw)" \
      org.opencontainers.image.source="https://github.com/subgate/subgate"
# The CA bundle, for outgoing TLS (none today, a message bus later).
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/subgate /subgate
# A numeric user and group (nobody in scratch's empty /etc/passwd), so
# that runtimes enforcing runAsNonRoot can check it.
USER 65532:65532
EXPOSE 8080
# scratch has no shell: the check is the binary itself, in exec form. It
# calls /healthz at $SUBGATE_ADDR (default :8080), as serve listens; its
# own timeout (2s) is under --timeout.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/subgate", "healthcheck"]
# ENTRYPOINT is the binary alone, in JSON form (no shell: it is PID 1 and
# gets SIGTERM itself, then drains); CMD is the subcommand. Flags after the
# image name still reach serve (`docker run subgate -max-conns 500`: a
# first argument that is no subcommand means serve), and the same image
# runs the other subcommands (`docker run --rm subgate token -sub alice`,
# `subgate call`), which ENTRYPOINT ["/subgate","serve"] would not allow.
ENTRYPOINT ["/subgate"]
CMD ["serve"]
