# camagent build, test and demo targets. Every target installs the Debian
# packages it needs (scripts/deps.sh), so they work on a fresh machine.
export PATH := $(PATH):/usr/local/go/bin
GO      ?= go
BIN     := bin
PKG     := ./cmd/camagent
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: all build build-arm64 build-armv7 build-purego build-all test test-unit vet fuzz bench demo netlab-relay clean

all: build

## build: the native binary at bin/camagent (cgo, with software H.264)
build:
	@scripts/deps.sh test
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/camagent $(PKG)

## build-arm64: cross-compile for 64-bit Raspberry Pi OS / arm64 boards (cgo, openh264)
build-arm64:
	@scripts/deps.sh arm64
	CGO_ENABLED=1 GOOS=linux GOARCH=arm64 CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ \
		$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/camagent-linux-arm64 $(PKG)

## build-armv7: cross-compile for 32-bit armv7 boards (cgo, openh264)
build-armv7:
	@scripts/deps.sh armv7
	CGO_ENABLED=1 GOOS=linux GOARCH=arm GOARM=7 CC=arm-linux-gnueabihf-gcc CXX=arm-linux-gnueabihf-g++ \
		$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/camagent-linux-armv7 $(PKG)

## build-purego: pure-Go arm64 binary (no cgo: MJPEG and camera-native H.264 only)
build-purego:
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 \
		$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/camagent-linux-arm64-purego $(PKG)

build-all: build build-arm64 build-armv7 build-purego

vet:
	$(GO) vet ./...
	CGO_ENABLED=0 $(GO) vet ./...

## test: every test (unit, end-to-end, pure-Go build, cross builds)
test: build vet
	$(GO) test -count=1 -timeout 15m ./...
	CGO_ENABLED=0 $(GO) test -count=1 -timeout 10m ./capture/... ./stream/... ./internal/...
	$(MAKE) build-arm64 build-armv7 build-purego
	$(MAKE) netlab-relay
	@ls -l $(BIN)/

## fuzz: run every fuzz target for FUZZTIME each (corpus kept in testdata/fuzz)
FUZZTIME ?= 15s
fuzz:
	@scripts/fuzz.sh $(FUZZTIME)

## bench: benchmarks with figures (latency, fan-out, encode, RSS)
bench: build
	$(GO) test -run='^$$' -bench=. -benchtime=1x -count=1 ./... | tee out/bench.txt

## demo: agent on the test source, a paired viewer on loopback, 10 s to out/demo.mp4
demo: build
	@scripts/demo.sh

## netlab-relay: camera behind home NAT, viewer behind carrier NAT, MASQUE relay
## killed and restarted mid-stream; 10 s to out/netlab-relay.mp4 (root; ~30 s)
netlab-relay: build
	@[ "$$(id -u)" -ne 0 ] || scripts/deps.sh netlab
	@test/netlab/relay.sh

clean:
	rm -rf $(BIN) out
