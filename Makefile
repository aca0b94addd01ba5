# Build and install wsjpeg without Docker (see docs/deploy.md).
#
#   make                          release build of the plugin and the launcher
#   sudo make install             plugin -> GStreamer plugin dir, launcher -> $(BINDIR),
#                                 systemd unit + /etc/default/wsjpeg
#   sudo make uninstall
#   make install DESTDIR=/tmp/stage   staged install (packaging)
#   make install-plugin           only libgstwsjpeg.so (for gst-launch-1.0 users)
#   make check-packaging          Dockerfile/wendy.json/unit consistency test
#   sudo make compat-check        build + run the plugin on Debian 11 (GStreamer 1.18)
#
# `install` does not compile: run `make` first as your normal user, so root
# never needs a Rust toolchain.

PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
SYSCONFDIR  ?= /etc
# systemd reads /usr/local/lib/systemd/system too; use /etc/systemd/system for
# other prefixes.
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
DESTDIR     ?=

CARGO       ?= cargo
PKG_CONFIG  ?= pkg-config
PROFILE     ?= release
CARGO_FLAGS ?= --locked
TARGET_DIR  ?= $(or $(CARGO_TARGET_DIR),target)
PROFILE_DIR := $(if $(filter dev,$(PROFILE)),debug,$(PROFILE))
OUT         := $(TARGET_DIR)/$(PROFILE_DIR)

# Evaluated when used, so targets that don't need GStreamer work without it.
GST_PLUGINS_DIR ?= $(shell $(PKG_CONFIG) --variable=pluginsdir gstreamer-1.0)

PLUGIN_PKG  := gst-plugin-wsjpeg
PLUGIN_SO   := libgstwsjpeg.so
LAUNCHER_PKG := wsjpeg-launcher
LAUNCHER    := wsjpeg-launcher
UNIT        := wsjpeg-launcher.service

INSTALL     ?= install

.PHONY: all build build-plugin build-launcher install install-plugin install-launcher \
        install-systemd uninstall check-packaging compat-check print-dirs

all: build

build:
	$(CARGO) build $(CARGO_FLAGS) --profile $(PROFILE) -p $(PLUGIN_PKG) -p $(LAUNCHER_PKG)

build-plugin:
	$(CARGO) build $(CARGO_FLAGS) --profile $(PROFILE) -p $(PLUGIN_PKG)

build-launcher:
	$(CARGO) build $(CARGO_FLAGS) --profile $(PROFILE) -p $(LAUNCHER_PKG)

install: install-plugin install-launcher install-systemd

install-plugin:
	@test -f "$(OUT)/$(PLUGIN_SO)" || { echo "$(OUT)/$(PLUGIN_SO) missing: run 'make build' (or 'make build-plugin') first" >&2; exit 1; }
	@test -n "$(GST_PLUGINS_DIR)" || { echo "cannot find GStreamer's plugin dir: install libgstreamer1.0-dev (pkg-config gstreamer-1.0) or pass GST_PLUGINS_DIR=" >&2; exit 1; }
	$(INSTALL) -d "$(DESTDIR)$(GST_PLUGINS_DIR)"
	$(INSTALL) -m 0644 "$(OUT)/$(PLUGIN_SO)" "$(DESTDIR)$(GST_PLUGINS_DIR)/$(PLUGIN_SO)"

install-launcher:
	@test -f "$(OUT)/$(LAUNCHER)" || { echo "$(OUT)/$(LAUNCHER) missing: run 'make build' (or 'make build-launcher') first" >&2; exit 1; }
	$(INSTALL) -d "$(DESTDIR)$(BINDIR)"
	$(INSTALL) -m 0755 "$(OUT)/$(LAUNCHER)" "$(DESTDIR)$(BINDIR)/$(LAUNCHER)"

# The unit names /usr/local/bin/wsjpeg-launcher; rewritten for another BINDIR.
# An existing /etc/default/wsjpeg is kept (it is configuration).
install-systemd:
	$(INSTALL) -d "$(DESTDIR)$(SYSTEMDUNITDIR)"
	sed 's#/usr/local/bin/$(LAUNCHER)#$(BINDIR)/$(LAUNCHER)#' packaging/$(UNIT) > "$(DESTDIR)$(SYSTEMDUNITDIR)/$(UNIT).tmp"
	chmod 0644 "$(DESTDIR)$(SYSTEMDUNITDIR)/$(UNIT).tmp"
	mv "$(DESTDIR)$(SYSTEMDUNITDIR)/$(UNIT).tmp" "$(DESTDIR)$(SYSTEMDUNITDIR)/$(UNIT)"
	$(INSTALL) -d "$(DESTDIR)$(SYSCONFDIR)/default"
	@if [ -e "$(DESTDIR)$(SYSCONFDIR)/default/wsjpeg" ]; then \
		echo "keeping existing $(DESTDIR)$(SYSCONFDIR)/default/wsjpeg"; \
	else \
		echo "$(INSTALL) -m 0644 packaging/wsjpeg.default $(DESTDIR)$(SYSCONFDIR)/default/wsjpeg"; \
		$(INSTALL) -m 0644 packaging/wsjpeg.default "$(DESTDIR)$(SYSCONFDIR)/default/wsjpeg"; \
	fi
	@if [ -z "$(DESTDIR)" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then \
		systemctl daemon-reload; \
		echo "Start it with: systemctl enable --now $(UNIT)"; \
	fi

# /etc/default/wsjpeg is configuration and stays; remove it by hand if wanted.
uninstall:
	-@if [ -z "$(DESTDIR)" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then \
		systemctl disable --now $(UNIT) 2>/dev/null || true; \
	fi
	rm -f "$(DESTDIR)$(SYSTEMDUNITDIR)/$(UNIT)"
	rm -f "$(DESTDIR)$(BINDIR)/$(LAUNCHER)"
	@if [ -n "$(GST_PLUGINS_DIR)" ]; then \
		echo "rm -f $(DESTDIR)$(GST_PLUGINS_DIR)/$(PLUGIN_SO)"; \
		rm -f "$(DESTDIR)$(GST_PLUGINS_DIR)/$(PLUGIN_SO)"; \
	fi
	-@if [ -z "$(DESTDIR)" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then \
		systemctl daemon-reload; \
	fi

check-packaging:
	bash packaging/check-dockerfile.sh

compat-check:
	bash packaging/compat-check.sh

print-dirs:
	@echo "BINDIR=$(BINDIR)"
	@echo "GST_PLUGINS_DIR=$(GST_PLUGINS_DIR)"
	@echo "SYSTEMDUNITDIR=$(SYSTEMDUNITDIR)"
	@echo "SYSCONFDIR=$(SYSCONFDIR)"
	@echo "OUT=$(OUT)"
