################################################################################
#
# camagent
#
################################################################################

# The source is this repository (the BR2_EXTERNAL tree lives in it). Go
# packages build offline with -mod=vendor: run scripts/vendor.sh in the
# repository first (go mod vendor plus openh264's static libraries, which
# go mod vendor leaves out because their directory holds no Go files).
CAMAGENT_VERSION = 0.1.0
CAMAGENT_SITE = $(BR2_EXTERNAL_CAMAGENT_PATH)/..
CAMAGENT_SITE_METHOD = local
# The repository has no licence file yet; set these when it does.
CAMAGENT_LICENSE = PROPRIETARY
CAMAGENT_GOMOD = github.com/camagent/camagent
CAMAGENT_BUILD_TARGETS = cmd/camagent
CAMAGENT_INSTALL_BINS = camagent
CAMAGENT_LDFLAGS = -X main.version=$(CAMAGENT_VERSION)

define CAMAGENT_CHECK_VENDOR
	test -f $(@D)/vendor/modules.txt || \
		{ echo "camagent: no vendor/ in $(CAMAGENT_SITE): run scripts/vendor.sh"; exit 1; }
endef
CAMAGENT_PRE_BUILD_HOOKS += CAMAGENT_CHECK_VENDOR

# user uid group gid password home shell groups comment (docs/manual/makeusers-syntax.txt)
define CAMAGENT_USERS
	camagent -1 camagent -1 * /var/lib/camagent - video,gpio camagent camera agent
endef

define CAMAGENT_INSTALL_INIT_SYSTEMD
	$(INSTALL) -D -m 0644 $(@D)/systemd/camagent.service \
		$(TARGET_DIR)/usr/lib/systemd/system/camagent.service
	$(INSTALL) -D -m 0644 $(@D)/systemd/camagent.sysusers \
		$(TARGET_DIR)/usr/lib/sysusers.d/camagent.conf
	$(INSTALL) -D -m 0644 $(@D)/systemd/camagent.sysctl \
		$(TARGET_DIR)/usr/lib/sysctl.d/50-camagent.conf
	$(INSTALL) -D -m 0644 $(@D)/systemd/camagent.udev \
		$(TARGET_DIR)/usr/lib/udev/rules.d/60-camagent.rules
endef

# The config (from the board's rootfs overlay) may hold the relay token:
# readable by the service's group only. Applied when the image is made,
# after the overlay is copied. (docs/manual/makedev-syntax.txt)
define CAMAGENT_PERMISSIONS
	/etc/camagent/camagent.yaml f 640 root camagent - - - - -
endef

$(eval $(golang-package))
