// Package deploy holds how xenha-bridge is run: the image (Containerfile,
// built by build-image.sh into an OCI archive with buildah, no Docker
// engine), the systemd unit with its sysusers.d file, and a configuration
// to start from. Its tests build the image and run the binary inside it,
// and check the unit with systemd-analyze verify.
package deploy
