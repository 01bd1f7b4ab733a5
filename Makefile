# Nose Cone build. Plain GNU make; `make help` lists the targets.
# Output goes only to bin/ and build/.

SHELL := /bin/bash
# sudo resets PATH, so fall back to the usual Go install location.
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# urfave_cli_no_docs leaves out urfave/cli's man and markdown generators,
# whose markdown library's init costs every nscn command about 3 ms of CPU.
BIN := bin
BUILD := build
PREFIX ?= /usr/local
# Where nscn looks for the stage1 images that ship with it, compiled in
# (stage0/stage1.SystemImageDir; paths.d overrides it at run time). The
# Debian packages use /usr/lib/nscn/stage1-images (Documentation/packaging.md).
STAGE1_DIR ?= $(PREFIX)/lib/nscn/stage1-images
# Where nscn looks for nscn-grpc (the gRPC services: nscn cri) and
# nscn-fetch (fetch, trust, run of an image not yet stored) when they are
# not beside nscn.
SERVICES_DIR ?= $(PREFIX)/lib/nscn
GO_LDFLAGS := -s -w -X github.com/nosecone/nscn/internal/version.Version=$(VERSION) -X github.com/nosecone/nscn/stage0/stage1.SystemImageDir=$(STAGE1_DIR) -X github.com/nosecone/nscn/stage0/cli.ServicesDir=$(SERVICES_DIR)
GOFLAGS_BUILD := -trimpath -tags urfave_cli_no_docs -ldflags "$(GO_LDFLAGS)"
# nscn itself is built with nscn_nofetch: it links no fetcher, signature
# verifier or registry client, and execs nscn-fetch, built without the
# tag, for what needs them (stage0/cli/fetchside_full.go).
GOFLAGS_NSCN := -trimpath -tags urfave_cli_no_docs,nscn_nofetch -ldflags "$(GO_LDFLAGS)"
export CGO_ENABLED := 0
FLAVOR ?= fly

# crictl and critest, pinned: built once into build/tools from the
# cri-tools module (the Go module proxy serves it), as golangci-lint is.
# Defined before the rules that name them: make expands a prerequisite
# list when it reads the rule.
CRI_TOOLS_VERSION := v1.37.0
CRICTL := $(BUILD)/tools/crictl-$(CRI_TOOLS_VERSION)
CRITEST := $(BUILD)/tools/critest-$(CRI_TOOLS_VERSION)
# Debian's busybox (not busybox-static: see the script), the critest
# stand-in images' base, fetched once like the systemd tree.
CRI_BUSYBOX := $(BUILD)/cri/busybox

# Pruned, not filtered: build/ holds whole Debian roots (make package-test).
GO_SOURCES := $(shell find . \( -path ./build -o -path ./bin \) -prune -o -name '*.go' -print) go.mod go.sum

.PHONY: man deb package-test registry cri-test cri-harness fetch-systemd stage1-nspawn bench torture torture-short cni-plugins stage1-fly all help unit check functional root deps fuzz lint fmt verify clean install security test-images ace-images tools quickstart vm-test fetch-vm-kernel stage1-kvm fetch-kvm-kernel generate

all: $(BIN)/nscn $(BIN)/nscn-fetch $(BIN)/nscn-grpc $(BIN)/stage1-fly.aci $(BIN)/stage1-nspawn.aci $(BIN)/stage1-kvm.aci ## Build nscn and the stage1 images

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_./-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 24

$(BIN)/nscn: $(GO_SOURCES) ## The stage0 command line
	@mkdir -p $(BIN)
	$(GO) build $(GOFLAGS_NSCN) -o $@ ./stage0/cmd/nscn

$(BIN)/nscn-fetch: $(GO_SOURCES) ## nscn's fetch side (fetch, trust, run of an image not yet stored), which nscn execs
	@mkdir -p $(BIN)
	$(GO) build $(GOFLAGS_BUILD) -o $@ ./stage0/cmd/nscn-fetch

$(BIN)/nscn-grpc: $(GO_SOURCES) ## nscn's gRPC services (nscn cri), which nscn execs
	@mkdir -p $(BIN)
	$(GO) build $(GOFLAGS_BUILD) -o $@ ./stage0/cmd/nscn-grpc

stage1-fly: $(BIN)/stage1-fly.aci ## The fly (chroot) stage1 image

$(BIN)/stage1-fly.aci: $(GO_SOURCES) scripts/build-stage1-fly.sh
	VERSION=$(VERSION) scripts/build-stage1-fly.sh $(BIN)

# The systemd tree stage1-nspawn carries: downloaded from Debian once (or
# taken from SYSTEMD_ROOT), then kept; `make fetch-systemd` refreshes it.
# The stamp, not a file of the tree: unpacked files keep the packages' old
# mtimes.
SYSTEMD_TREE := $(BUILD)/systemd/.fetched

fetch-systemd: ## Fetch systemd and systemd-nspawn again (Debian's packages, or SYSTEMD_ROOT)
	scripts/fetch-systemd.sh $(BUILD)/systemd
	touch $(SYSTEMD_TREE)

$(SYSTEMD_TREE): scripts/fetch-systemd.sh
	scripts/fetch-systemd.sh $(BUILD)/systemd
	touch $@

stage1-nspawn: $(BIN)/stage1-nspawn.aci ## The nspawn stage1 image, the default one

$(BIN)/stage1-nspawn.aci: $(GO_SOURCES) scripts/build-stage1-nspawn.sh $(SYSTEMD_TREE) $(BUILD)/cni-plugins/ptp
	VERSION=$(VERSION) SYSTEMD_DIR=$(BUILD)/systemd CNI_PLUGIN_DIR=$(BUILD)/cni-plugins scripts/build-stage1-nspawn.sh $(BIN)

# The kvm flavor's guest kernel: Debian's cloud kernel with the virtio
# modules the guest loads from its initramfs (stage1-kvm/README.md), from
# KVM_KERNEL_SUITE with a private apt configuration in build/kvm/apt
# (scripts/vm/fetch-kernel.sh): trixie-backports' Linux 7, whose procfs
# has the pidns option the app helper's fast path needs (Linux 6.15 on).
# KVM_KERNEL_SUITE= (empty) takes the host's apt sources (bookworm: 6.1,
# every app start on the helper's slower path); KVM_KERNEL_PACKAGE names a
# linux-image package instead of the one linux-image-cloud-amd64 depends
# on; KVM_KERNEL_MIRROR and KVM_KERNEL_KEYRING the archive and its keys.
# KERNEL_DIR points at another fetch-kernel.sh output (nothing is fetched
# then), QEMU and VIRTIOFSD at other host programs (packagers). The stamp
# depends on the source's settings and the modules (build/kvm/kernel.source),
# so changing them fetches again.
KVM_MODULES := virtio_pci virtiofs virtio_console virtio_net
KVM_KERNEL_SUITE ?= trixie-backports
KVM_KERNEL_PACKAGE ?=
KVM_KERNEL_MIRROR ?= http://deb.debian.org/debian
KVM_KERNEL_KEYRING ?= /usr/share/keyrings/debian-archive-keyring.gpg
KVM_KERNEL_FETCH := VM_MODULES="$(KVM_MODULES)" VM_KERNEL_SUITE="$(KVM_KERNEL_SUITE)" \
	VM_KERNEL_PACKAGE="$(KVM_KERNEL_PACKAGE)" VM_KERNEL_MIRROR="$(KVM_KERNEL_MIRROR)" \
	VM_KERNEL_KEYRING="$(KVM_KERNEL_KEYRING)" VM_KERNEL_APT_DIR=$(abspath $(BUILD)/kvm/apt) \
	scripts/vm/fetch-kernel.sh $(BUILD)/kvm/kernel
KVM_KERNEL_SOURCE := $(BUILD)/kvm/kernel.source
KERNEL_DIR ?= $(BUILD)/kvm/kernel
ifeq ($(KERNEL_DIR),$(BUILD)/kvm/kernel)
KVM_KERNEL := $(BUILD)/kvm/.fetched
else
KVM_KERNEL :=
endif
QEMU ?= /usr/bin/qemu-system-x86_64
VIRTIOFSD ?=

fetch-kvm-kernel: $(KVM_KERNEL_SOURCE) ## Fetch the kvm flavor's guest kernel again (Debian's linux-image-cloud-amd64 of KVM_KERNEL_SUITE, default trixie-backports)
	$(KVM_KERNEL_FETCH)
	touch $(BUILD)/kvm/.fetched

# Rewritten only when the settings change, so that the stamp below is
# out of date then and only then.
$(KVM_KERNEL_SOURCE): FORCE
	@mkdir -p $(@D)
	@printf 'suite=%s package=%s mirror=%s keyring=%s modules=%s\n' "$(KVM_KERNEL_SUITE)" "$(KVM_KERNEL_PACKAGE)" \
		"$(KVM_KERNEL_MIRROR)" "$(KVM_KERNEL_KEYRING)" "$(KVM_MODULES)" >$@.new
	@if cmp -s $@.new $@; then rm $@.new; else mv $@.new $@; fi

$(BUILD)/kvm/.fetched: scripts/vm/fetch-kernel.sh $(KVM_KERNEL_SOURCE)
	$(KVM_KERNEL_FETCH)
	touch $@

FORCE:

stage1-kvm: $(BIN)/stage1-kvm.aci ## The kvm stage1 image: each pod in a qemu VM (KVM, else TCG)

$(BIN)/stage1-kvm.aci: $(GO_SOURCES) scripts/build-stage1-kvm.sh $(SYSTEMD_TREE) $(KVM_KERNEL) $(BUILD)/cni-plugins/ptp
	VERSION=$(VERSION) SYSTEMD_DIR=$(BUILD)/systemd CNI_PLUGIN_DIR=$(BUILD)/cni-plugins KERNEL_DIR=$(KERNEL_DIR) QEMU=$(QEMU) VIRTIOFSD=$(VIRTIOFSD) \
		scripts/build-stage1-kvm.sh $(BIN)

tools: $(BUILD)/actool ## Build the appc reference tools used by the tests

$(BUILD)/actool: go.mod go.sum
	@mkdir -p $(BUILD)
	$(GO) build -trimpath -o $@ github.com/appc/spec/actool

test-images: $(BIN)/nscn $(BUILD)/actool ace-images ## Build the busybox test and quickstart images into build/images
	GO=$(GO) scripts/build-images.sh $(BUILD)/images

ace-images: $(BUILD)/actool ## Build the appc ACE validator images (main, sidekick) into build/images
	GO=$(GO) scripts/build-ace-images.sh $(BUILD)/images $(BUILD)/actool

quickstart: deps all test-images ## Build everything and run the hello image (root)
	scripts/quickstart.sh $(BIN)/nscn $(BUILD)/images

unit: ## Unit tests, no root needed, offline
	$(GO) test -count=1 ./...

deps: ## Install the Debian packages the build and tests need (idempotent, root)
	scripts/install-deps.sh

CNI_PLUGINS := $(BUILD)/cni-plugins
cni-plugins: $(CNI_PLUGINS)/ptp ## Build the CNI plugins (static) into build/cni-plugins

$(CNI_PLUGINS)/ptp: go.mod go.sum scripts/build-cni-plugins.sh
	GO=$(GO) scripts/build-cni-plugins.sh $(CNI_PLUGINS)

root: $(CNI_PLUGINS)/ptp ## The in-package tests as root: root-only tests run instead of skipping
	@test "$$(id -u)" -eq 0 || { echo "make root: run as root" >&2; exit 1; }
	NSCN_CNI_PLUGIN_DIR=$(abspath $(CNI_PLUGINS)) $(GO) test -count=1 ./...

functional: all test-images ## End-to-end suite against the built binaries (root)
	$(GO) test -c -tags "functional $(FLAVOR)" -o $(BUILD)/functional.test ./tests
	cd tests && NSCN_BIN=$(abspath $(BIN)/nscn) NSCN_IMAGES=$(abspath $(BUILD)/images) \
		NSCN_ACTOOL=$(abspath $(BUILD)/actool) NSCN_STAGE1_NSPAWN_ACI=$(abspath $(BIN)/stage1-nspawn.aci) \
		NSCN_STAGE1_KVM_ACI=$(abspath $(BIN)/stage1-kvm.aci) \
		$(abspath $(BUILD)/functional.test) -test.v -test.count=1 -test.timeout 30m

security: all test-images ## Containment suite: attacks on pods of both flavors, each asserted to fail (root)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BUILD)/security/attack ./tests/security/attack
	$(GO) test -c -tags functional -o $(BUILD)/security.test ./tests/security
	cd tests/security && NSCN_BIN=$(abspath $(BIN)/nscn) NSCN_IMAGES=$(abspath $(BUILD)/images) \
		NSCN_ACTOOL=$(abspath $(BUILD)/actool) NSCN_STAGE1_NSPAWN_ACI=$(abspath $(BIN)/stage1-nspawn.aci) \
		NSCN_ATTACK=$(abspath $(BUILD)/security/attack) \
		$(abspath $(BUILD)/security.test) -test.v -test.count=1 -test.timeout 15m

registry: all test-images $(CRICTL) ## Registry suite: docker://, oci: and archives from a loopback docker-registry (plain http, TLS, auth), pushed, copied and proxied by the test; nscn cri's image service driven by crictl (root)
	$(GO) test -c -tags functional -o $(BUILD)/registry.test ./tests/registry
	cd tests/registry && NSCN_BIN=$(abspath $(BIN)/nscn) NSCN_IMAGES=$(abspath $(BUILD)/images) \
		NSCN_STAGE1_NSPAWN_ACI=$(abspath $(BIN)/stage1-nspawn.aci) NSCN_CRICTL=$(abspath $(CRICTL)) \
		$(abspath $(BUILD)/registry.test) -test.v -test.count=1 -test.timeout 20m

# The cgroup v2 test VM (Documentation/testing-vm.md): Debian's cloud
# kernel, fetched once like the systemd tree (the stamp, since the
# unpacked files keep the package's mtimes); `make fetch-vm-kernel`
# refreshes it.
VM_KERNEL := $(BUILD)/vm/.fetched

fetch-vm-kernel: ## Fetch the cgroup v2 test VM's kernel again (Debian's linux-image-cloud-amd64)
	scripts/vm/fetch-kernel.sh $(BUILD)/vm/kernel
	touch $(VM_KERNEL)

$(VM_KERNEL): scripts/vm/fetch-kernel.sh
	scripts/vm/fetch-kernel.sh $(BUILD)/vm/kernel
	touch $@

vm-test: all test-images $(VM_KERNEL) ## End-to-end tests on a pure cgroup v2 host, a qemu VM (KVM, else TCG: ~3 min)
	$(GO) test -c -tags vm -o $(BUILD)/vm.test ./tests/cgroupv2
	cd tests/cgroupv2 && NSCN_BIN=$(abspath $(BIN)/nscn) NSCN_IMAGES=$(abspath $(BUILD)/images) \
		NSCN_STAGE1_NSPAWN_ACI=$(abspath $(BIN)/stage1-nspawn.aci) NSCN_VM_KERNEL=$(abspath $(BUILD)/vm/kernel) \
		NSCN_VM_INIT=$(abspath scripts/vm/init.sh) NSCN_VM_CACHE=$(abspath $(BUILD)/vm) \
		$(abspath $(BUILD)/vm.test) -test.v -test.count=1 -test.timeout 15m

BENCH_FLAGS ?=
bench: deps all test-images cri-harness ## Measure nscn against crun, runc, unshare+chroot, gzip, tar, podman, skopeo and containerd; fails when a target is missed (root; BENCH_FLAGS=-figures=3 for one figure, -figures=pull for the registry pull, -figures=cri for critest's lifecycle benchmarks)
	scripts/install-bench-deps.sh
	$(GO) build -trimpath -o $(BUILD)/nscn-bench ./bench/cmd/nscn-bench
	$(CRI_TEST_ENV) $(BUILD)/nscn-bench -nscn $(BIN)/nscn -images $(BUILD)/images -work $(BUILD)/bench \
		-cri-test $(abspath $(BUILD)/cri.test) $(BENCH_FLAGS)

TORTURE_FLAGS ?=
torture: all test-images ## Torture suite: SIGKILL crashes, 8 parallel loops, hostile images (root, ~5 min; TORTURE_FLAGS=-seed=N to replay)
	$(GO) test -c -tags torture -o $(BUILD)/torture.test ./tests/torture
	cd tests/torture && NSCN_BIN=$(abspath $(BIN)/nscn) NSCN_IMAGES=$(abspath $(BUILD)/images) \
		NSCN_ACTOOL=$(abspath $(BUILD)/actool) \
		$(abspath $(BUILD)/torture.test) -test.v -test.count=1 -test.timeout 30m $(TORTURE_FLAGS)

torture-short: ## The short torture suite (~1 min) that make check runs
	$(MAKE) torture TORTURE_FLAGS=-test.short

check: deps ## The test command: install packages, lint, build everything, run unit, root and end-to-end suites
	$(MAKE) lint
	$(MAKE) all
	$(MAKE) root
	$(MAKE) functional FLAVOR="fly nspawn kvm"
	$(MAKE) security
	$(MAKE) registry
	$(MAKE) cri-test
	$(MAKE) vm-test
	$(MAKE) torture-short
	$(MAKE) package-test
	$(MAKE) fuzz FUZZTIME=1000x

FUZZTIME ?= 20s
fuzz: ## Run every fuzz target briefly
	@set -e; for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "fuzz $$pkg $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done


$(CRICTL):
	@mkdir -p $(@D)
	scripts/build-cri-tools.sh $(CRI_TOOLS_VERSION) crictl $(abspath $@)

$(CRITEST):
	@mkdir -p $(@D)
	scripts/build-cri-tools.sh $(CRI_TOOLS_VERSION) critest $(abspath $@)

CRI_TEST_FLAGS ?=
# CRI_FOCUS=REGEX: a quick run of the critest specs it names, against nscn
# only, each printed with its reason; no ratchet (Documentation/cri.md).
CRI_FOCUS ?=
$(CRI_BUSYBOX): scripts/cri/fetch-busybox.sh
	scripts/cri/fetch-busybox.sh $@

# What the critest harness (tests/cri) is told, by cri-test and by the
# bench's figure 10.
CRI_TEST_ENV = NSCN_BIN=$(abspath $(BIN)/nscn) NSCN_CRITEST=$(abspath $(CRITEST)) \
	NSCN_CRI_STANDIN=$(abspath $(BUILD)/cri/standin) NSCN_CRI_BUSYBOX=$(abspath $(CRI_BUSYBOX)) NSCN_CNI_PLUGIN_DIR=$(abspath $(CNI_PLUGINS)) \
	NSCN_CRI_CACHE=$(abspath $(BUILD)/cri)

# The harness and its stand-in image maker.
cri-harness: all $(CRITEST) $(CRI_BUSYBOX)
	@mkdir -p $(BUILD)/cri
	$(GO) build -trimpath -buildvcs=false -o $(BUILD)/cri/standin ./tests/cri/standin
	$(GO) test -c -tags functional -o $(BUILD)/cri.test ./tests/cri

cri-test: cri-harness ## critest v1.37.0 against Debian's containerd and nscn cri, stand-in images served under their real names in private namespaces; results in build/cri/results.txt; fails when a spec of tests/cri/*-passes.txt stops passing (root, ~4.5 min; CRI_TEST_FLAGS=-update rewrites the lists)
	cd tests/cri && $(CRI_TEST_ENV) NSCN_CRI_FOCUS='$(CRI_FOCUS)' \
		$(abspath $(BUILD)/cri.test) -test.v -test.count=1 -test.timeout 30m $(CRI_TEST_FLAGS)

# golangci-lint, pinned: `make lint` installs it into build/tools once (the
# only download a fresh clone's `make check` makes besides its packages) and
# reuses it after. Its cache lives in build/ too.
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT := $(BUILD)/tools/golangci-lint-$(GOLANGCI_LINT_VERSION)

$(GOLANGCI_LINT):
	@mkdir -p $(@D)
	GOBIN=$(abspath $(BUILD)/tools/gobin) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(BUILD)/tools/gobin/golangci-lint $@

# The API service's Go code (api/v1alpha/*.pb.go) is generated and
# committed: a build needs no protoc. `make generate` rebuilds it with
# Debian's protoc (package protobuf-compiler) and the Go plugins at the
# pinned versions below, installed into build/tools once, and records the
# hash of api.proto that a unit test checks against the .proto, so that an
# edit without a regeneration fails `make unit`.
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.5.1
PROTOC_PLUGINS := $(BUILD)/tools/protoc-plugins-$(PROTOC_GEN_GO_VERSION)-$(PROTOC_GEN_GO_GRPC_VERSION)

$(PROTOC_PLUGINS)/protoc-gen-go-grpc:
	@mkdir -p $(@D)
	GOBIN=$(abspath $(@D)) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(abspath $(@D)) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

generate: $(PROTOC_PLUGINS)/protoc-gen-go-grpc ## Regenerate api/v1alpha's Go code from api.proto (needs protoc: Debian's protobuf-compiler)
	@command -v protoc >/dev/null || { echo "make generate: protoc is missing (Debian: apt-get install protobuf-compiler)" >&2; exit 1; }
	PATH=$(abspath $(PROTOC_PLUGINS)):$$PATH protoc -I api/v1alpha \
		--go_out=paths=source_relative:api/v1alpha --go-grpc_out=paths=source_relative:api/v1alpha api/v1alpha/api.proto
	sha256sum api/v1alpha/api.proto | cut -d' ' -f1 > api/v1alpha/testdata/api.proto.sha256

LINT_PKGS ?= ./...
lint: $(GOLANGCI_LINT) ## go vet, shellcheck and golangci-lint (.golangci.yml); LINT_PKGS=./store/... for fewer packages
	$(GO) vet -tags "urfave_cli_no_docs functional fly nspawn kvm torture vm" $(LINT_PKGS)
	# make functional FLAVOR=X builds the suite with one flavor's tag: each must compile alone.
	for f in fly nspawn kvm; do $(GO) vet -tags "functional $$f" ./tests/ || exit 1; done
	shellcheck -x scripts/*.sh scripts/lib/*.sh scripts/vm/*.sh scripts/cri/*.sh .ci/run
	GOLANGCI_LINT_CACHE=$(abspath $(BUILD)/golangci-lint-cache) $(GOLANGCI_LINT) run $(LINT_PKGS)
	@# nscn's own build (nscn_nofetch) compiles fetchside_lean.go in place of the fetch side,
	@# and store/tree's blake3_lean.go in place of BLAKE3.
	GOLANGCI_LINT_CACHE=$(abspath $(BUILD)/golangci-lint-cache) $(GOLANGCI_LINT) run --build-tags urfave_cli_no_docs,nscn_nofetch ./stage0/cli/ ./stage0/cmd/nscn/ ./store/tree/

fmt: $(GOLANGCI_LINT) ## Format the Go sources (gofumpt and goimports, as make lint checks)
	GOLANGCI_LINT_CACHE=$(abspath $(BUILD)/golangci-lint-cache) $(GOLANGCI_LINT) fmt ./...

verify: ## go mod tidy and gofmt leave the tree unchanged
	$(GO) mod tidy
	git diff --exit-code go.mod go.sum
	test -z "$$(gofmt -s -l $$(find . -name '*.go' -not -path './build/*'))"

# The install tree (Documentation/packaging.md). make install and the
# Debian packages (debian/rules runs make install into debian/tmp) lay out
# the same files. Debian bookworm keeps units in /lib/systemd/system, so
# debian/rules sets SYSTEMDUNITDIR.
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR ?= $(PREFIX)/share/zsh/vendor-completions
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
DOCS := $(BUILD)/docs

# The man page and completion scripts, from the command tree by
# nscn-gendoc (built without urfave_cli_no_docs: it needs ToMan).
man: ## Generate the man pages (nscn.1, nscn-COMMAND.1) and the bash and zsh completion into build/docs
	$(GO) build -trimpath -o $(BUILD)/nscn-gendoc ./stage0/cmd/nscn-gendoc
	rm -rf $(DOCS)
	$(BUILD)/nscn-gendoc -man $(DOCS)/man1 -bash $(DOCS)/bash/nscn -zsh $(DOCS)/zsh/_nscn

install: all man ## Install nscn, the stage1 images, man pages, completion, units, tmpfiles under DESTDIR/PREFIX (STAGE1_DIR compiled in)
	@# The binary is built again for this STAGE1_DIR: bin/nscn may have been
	@# built for another PREFIX (go's cache makes it cheap).
	$(GO) build $(GOFLAGS_NSCN) -o $(BUILD)/install/nscn ./stage0/cmd/nscn
	install -D -m 0755 $(BUILD)/install/nscn $(DESTDIR)$(BINDIR)/nscn
	$(GO) build $(GOFLAGS_BUILD) -o $(BUILD)/install/nscn-grpc ./stage0/cmd/nscn-grpc
	install -D -m 0755 $(BUILD)/install/nscn-grpc $(DESTDIR)$(SERVICES_DIR)/nscn-grpc
	$(GO) build $(GOFLAGS_BUILD) -o $(BUILD)/install/nscn-fetch ./stage0/cmd/nscn-fetch
	install -D -m 0755 $(BUILD)/install/nscn-fetch $(DESTDIR)$(SERVICES_DIR)/nscn-fetch
	for f in $(BIN)/*.aci; do [ -e "$$f" ] || continue; install -D -m 0644 "$$f" $(DESTDIR)$(STAGE1_DIR)/$$(basename "$$f"); done
	install -d $(DESTDIR)$(MANDIR)/man1
	install -m 0644 $(DOCS)/man1/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -D -m 0644 $(DOCS)/bash/nscn $(DESTDIR)$(BASHCOMPDIR)/nscn
	install -D -m 0644 $(DOCS)/zsh/_nscn $(DESTDIR)$(ZSHCOMPDIR)/_nscn
	install -d $(DESTDIR)$(SYSTEMDUNITDIR)
	for u in dist/systemd/*; do n=$$(basename "$$u" .in); \
		sed 's|@BINDIR@|$(BINDIR)|g' "$$u" > $(DESTDIR)$(SYSTEMDUNITDIR)/$$n && chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/$$n; done
	install -D -m 0644 dist/tmpfiles.d/nscn.conf $(DESTDIR)$(TMPFILESDIR)/nscn.conf
	install -D -m 0644 dist/sysusers.d/nscn.conf $(DESTDIR)$(SYSUSERSDIR)/nscn.conf

# The Debian packages, built with dpkg-buildpackage from a copy of the tree
# (tracked and new files, not bin/ or build/) under build/deb, so that the
# build starts clean and its results land in build/deb, not in the parent
# directory. The stage1-nspawn package takes systemd from the build host's
# own packages (SYSTEMD_ROOT=/, Build-Depends systemd, systemd-container).
DEB_VERSION ?= $(shell scripts/deb-version.sh)
deb: ## Build the Debian packages (nscn, nscn-stage1-nspawn, nscn-stage1-fly) into build/deb and run lintian
	scripts/build-deb.sh $(BUILD)/deb "$(DEB_VERSION)"

package-test: deb test-images ## make install into build/install-test and run a pod from it; install the packages into a debootstrapped Debian 12 root, boot it with systemd-nspawn and run pods, gc and the metadata service from the installed paths (root)
	rm -rf $(BUILD)/install-test
	$(MAKE) install PREFIX=/opt/nscn DESTDIR=$(abspath $(BUILD)/install-test)
	$(GO) test -c -tags functional -o $(BUILD)/packaging.test ./tests/packaging
	cd tests/packaging && NSCN_DEB_DIR=$(abspath $(BUILD)/deb) NSCN_IMAGES=$(abspath $(BUILD)/images) \
		NSCN_ROOT_SCRIPT=$(abspath scripts/package-test-root.sh) NSCN_ROOT_CACHE=$(abspath $(BUILD)/debootstrap) \
		NSCN_INSTALL_DESTDIR=$(abspath $(BUILD)/install-test) NSCN_INSTALL_PREFIX=/opt/nscn \
		$(abspath $(BUILD)/packaging.test) -test.v -test.count=1 -test.timeout 20m

clean: ## Remove bin/ and build/
	rm -rf $(BIN) $(BUILD)
