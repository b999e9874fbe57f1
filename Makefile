# camagent build, test and demo targets. Every target installs the Debian
# packages it needs (scripts/deps.sh), so they work on a fresh machine.
export PATH := $(PATH):/usr/local/go/bin
GO      ?= go
BIN     := bin
PKG     := ./cmd/camagent
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: all build build-arm64 build-armv7 build-purego build-all test vet fuzz bench demo clean powerloss-test qemu-test install install-files buildroot-check qemu-systemd-test netlab-relay netlab-matrix netlab-direct attack-test masque-interop masque-bench

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

## test: every test: unit and end-to-end (packages in parallel, -short), then
## the long system tests one at a time so they do not starve each other of
## CPU, then the pure-Go and cross builds
test: build vet
	@scripts/deps.sh systemd
	scripts/gotest.sh -short -count=1 -timeout 15m -- ./...
	$(MAKE) masque-interop
	CGO_ENABLED=0 scripts/gotest.sh -short -count=1 -timeout 10m -- ./capture/... ./stream/... ./internal/... ./storage/... ./motion/... ./board/... ./p2p/...
	scripts/retry.sh $(MAKE) powerloss-test
	$(MAKE) build-arm64 build-armv7 build-purego
	scripts/retry.sh $(MAKE) qemu-test
	scripts/retry.sh $(MAKE) qemu-systemd-test
	$(MAKE) buildroot-check
	scripts/retry.sh $(MAKE) netlab-relay
	scripts/retry.sh $(MAKE) netlab-direct
	scripts/retry.sh $(MAKE) netlab-matrix
	@ls -l $(BIN)/

## fuzz: run every fuzz target for FUZZTIME each (corpus kept in testdata/fuzz)
FUZZTIME ?= 15s
fuzz:
	@scripts/fuzz.sh $(FUZZTIME)

## bench: benchmarks with figures (latency, fan-out, encode, RSS)
bench: build
	@mkdir -p out
	$(GO) test -run='^$$' -bench=. -count=1 ./... 2>&1 | grep -v '^\[OpenH264\]' | tee out/bench.txt

## powerloss-test: SIGKILL the recording agent at random moments (and truncate
## its segment), restart, check every segment with ffprobe and the loss per kill
## (also part of `make test`; POWERLOSS_KILLS=12 by default, about 45 s)
powerloss-test:
	@scripts/deps.sh test
	$(GO) test -count=1 -v -timeout 10m -run '^TestPowerLoss$$' ./cmd/camagent

## qemu-test: the arm64 build on Debian's arm64 kernel under QEMU (TCG) with the
## vivid camera, watched from the host; writes out/qemu.mp4 (about 2-4 min)
qemu-test: build build-arm64
	@scripts/deps.sh qemu
	@scripts/qemu-test.sh

## install: the binary, systemd unit, sysusers.d and sysctl.d entries and (if absent) the
## config under DESTDIR (default /): make install DESTDIR=/tmp/root
PREFIX  ?= /usr
DESTDIR ?=
install: build install-files
install-files:
	install -D -m 0755 $(BIN)/camagent $(DESTDIR)$(PREFIX)/bin/camagent
	install -D -m 0644 systemd/camagent.service $(DESTDIR)$(PREFIX)/lib/systemd/system/camagent.service
	install -D -m 0644 systemd/camagent.sysusers $(DESTDIR)$(PREFIX)/lib/sysusers.d/camagent.conf
	install -D -m 0644 systemd/camagent.sysctl $(DESTDIR)$(PREFIX)/lib/sysctl.d/50-camagent.conf
	test -e $(DESTDIR)/etc/camagent/camagent.yaml || \
		install -D -m 0644 systemd/camagent.yaml $(DESTDIR)/etc/camagent/camagent.yaml

## buildroot-check: buildroot/ is a well-formed BR2_EXTERNAL tree, and the
## package builds offline from vendored source for arm64 (about 1-2 min)
buildroot-check:
	@scripts/deps.sh arm64
	@scripts/buildroot-check.sh

## qemu-systemd-test: as qemu-test, with systemd as PID 1 running the hardened
## systemd/camagent.service (about 1 min)
qemu-systemd-test: build build-arm64
	@scripts/deps.sh qemu
	@QEMU_INIT=systemd scripts/qemu-test.sh

## netlab-matrix: (root) every camera/viewer NAT pair (public, full-cone,
## port-restricted, symmetric, CGNAT, hairpin) in a lab of network namespaces
## with nftables NAT: the MASQUE relay, the agent and the viewer themselves,
## streaming through the relay and going direct where possible;
## writes out/nat-matrix.json and docs/nat-matrix.md, summary line last (~3 min)
netlab-matrix:
	@[ "$$(id -u)" -eq 0 ] || { echo "netlab-matrix needs root (network namespaces, nftables)" >&2; exit 1; }
	@scripts/deps.sh netlab
	@mkdir -p out && rm -f out/nat-matrix.summary
	@$(GO) test -count=1 -v -timeout 10m -run '^TestNATMatrix$$' ./test/natlab; rc=$$?; \
		cat out/nat-matrix.summary 2>/dev/null; exit $$rc

## masque-interop: quic-go/masque-go's RFC 9298 client against the relay
## binary, 1000 datagrams to a UDP echo and back byte for byte (its own
## module, test/masqueinterop, pinned to the quic-go masque-go builds with)
masque-interop: build
	cd test/masqueinterop && CAMAGENT_BIN=$(CURDIR)/$(BIN)/camagent $(GO) test -count=1 -v -run '^TestInterop$$' .

## masque-bench: the relay and masque-go's proxy side by side, same client,
## one run: throughput and CPU per datagram, ratios last (about 1 min;
## docs/benchmarks.md)
masque-bench: build
	@mkdir -p out
	cd test/masqueinterop && CAMAGENT_BIN=$(CURDIR)/$(BIN)/camagent flock /tmp/camagent-heavy.lock \
		$(GO) test -count=1 -run '^$$' -bench 'SideBySide|DefaultRate' -benchtime=1x . | tee $(CURDIR)/out/masque-bench.txt

## attack-test: every attack found in review (issue 11) against the real relay
## and agent processes; writes out/attacks.json (name, refused, evidence) and
## fails unless every attack was refused
attack-test: build
	@mkdir -p out && rm -f out/attacks.json
	CAMAGENT_BIN=$(CURDIR)/$(BIN)/camagent $(GO) test -count=1 -v -timeout 15m ./test/attack
	@test -s out/attacks.json || { echo "attack-test: no attack ran" >&2; exit 1; }

## demo: agent on the test source, a paired viewer on loopback, 10 s to out/demo.mp4
demo: build
	@scripts/demo.sh

## netlab-relay: camera behind home NAT, viewer behind carrier NAT, MASQUE relay
## killed and restarted mid-stream; 10 s to out/netlab-relay.mp4 (root; ~30 s)
netlab-relay: build
	@[ "$$(id -u)" -ne 0 ] || scripts/deps.sh netlab
	@test/netlab/relay.sh

## netlab-direct: same lab; the viewer starts on the relay, NAT traversal moves
## it to the direct path, the direct path is cut and it falls back (root; ~12 s)
netlab-direct: build
	@[ "$$(id -u)" -ne 0 ] || scripts/deps.sh netlab
	@test/netlab/direct.sh

clean:
	rm -rf $(BIN) out
