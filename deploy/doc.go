// Package deploy holds how xenha-bridge is run: the image (Containerfile,
// built by build-image.sh into an OCI archive with buildah, no Docker
// engine), the systemd unit with its sysusers.d file, a configuration to
// start from, Prometheus alerting rules (prometheus/) and a Grafana
// dashboard (grafana/). Its tests build the image and run the binary
// inside it, check the unit with systemd-analyze verify, check and
// unit-test the rules with promtool, check that the rules and the
// dashboard read only metrics the bridge exports, and fire an alert in a
// real Prometheus scraping a bridge on the simulator.
package deploy
