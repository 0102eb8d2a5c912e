package deploy

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildah runs buildah on a private storage (vfs, under a test directory)
// so the test leaves the machine's storage alone and can run beside others.
type buildah struct {
	t          *testing.T
	root, run_ string
}

func (b buildah) cmd(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "buildah", append([]string{"--storage-driver", "vfs", "--root", b.root, "--runroot", b.run_}, args...)...)
}

// out runs buildah and returns its standard output, failing the test on error.
func (b buildah) out(args ...string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	c := b.cmd(ctx, args...)
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		b.t.Fatalf("buildah %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestImage builds the image as `make image` does, into an OCI archive,
// loads the archive into an empty storage, checks what the image is made
// of, and runs its binary inside it: `version`, then `serve --simulate`
// probed by `health` from inside the image and scraped from outside
// (chroot isolation shares the host's network).
func TestImage(t *testing.T) {
	needTool(t, "buildah", "buildah", "XENHA_SKIP_IMAGE")
	dir := t.TempDir()
	archive := filepath.Join(dir, "xenha-bridge-image.tar")

	build := exec.Command("./build-image.sh", archive)
	build.Env = append(os.Environ(), "VERSION=image-test", "IMAGE_NAME=localhost/xenha-bridge:image-test",
		"BUILDAH_ROOT="+filepath.Join(dir, "build-storage"), "BUILDAH_RUNROOT="+filepath.Join(dir, "build-run"))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build-image.sh: %v\n%s", err, out)
	}

	// A fresh storage: the archive alone must be enough.
	b := buildah{t: t, root: filepath.Join(dir, "storage"), run_: filepath.Join(dir, "run")}
	ctr := strings.TrimSpace(b.out("from", "--pull=false", "--name", fmt.Sprintf("xenha-image-test-%d", os.Getpid()), "oci-archive:"+archive))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		b.cmd(ctx, "rm", ctr).Run()
		b.cmd(ctx, "rmi", "--all", "--force").Run()
	})

	// The image's configuration.
	var inspect struct {
		OCIv1 struct {
			Config struct {
				User         string
				ExposedPorts map[string]struct{}
				Entrypoint   []string
				Cmd          []string
				Volumes      map[string]struct{}
				Labels       map[string]string
			}
		}
	}
	if err := json.Unmarshal([]byte(b.out("inspect", "--type", "container", ctr)), &inspect); err != nil {
		t.Fatal(err)
	}
	cfg := inspect.OCIv1.Config
	if cfg.User != "65532:65532" || !slices.Equal(cfg.Entrypoint, []string{"/xenha-bridge"}) ||
		!slices.Equal(cfg.Cmd, []string{"serve", "--config", "/etc/xenha-bridge/config.yaml"}) ||
		len(cfg.ExposedPorts) != 2 || cfg.Volumes["/var/lib/xenha-bridge"] != struct{}{} ||
		cfg.Labels["org.opencontainers.image.version"] != "image-test" {
		t.Errorf("image configuration: %+v", cfg)
	}
	for _, p := range []string{"50051/tcp", "9102/tcp"} {
		if _, ok := cfg.ExposedPorts[p]; !ok {
			t.Errorf("port %s is not exposed", p)
		}
	}

	// Its files: a static binary, the user, CA certificates, /tmp, the
	// journal's directory; nothing else.
	rootfs := strings.TrimSpace(b.out("mount", ctr))
	bin, err := elf.Open(filepath.Join(rootfs, "xenha-bridge"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range bin.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Error("the binary is dynamically linked")
		}
	}
	bin.Close()
	for path, want := range map[string]struct {
		mode os.FileMode
		uid  uint32
	}{
		"tmp":                               {os.ModeDir | os.ModeSticky | 0o777, 0},
		"var/lib/xenha-bridge":              {os.ModeDir | 0o700, 65532},
		"etc/ssl/certs/ca-certificates.crt": {0o644, 0},
		"etc/passwd":                        {0o644, 0},
	} {
		fi, err := os.Stat(filepath.Join(rootfs, path))
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if fi.Mode() != want.mode || fi.Sys().(*syscall.Stat_t).Uid != want.uid {
			t.Errorf("/%s: mode %v uid %d, want %v uid %d", path, fi.Mode(), fi.Sys().(*syscall.Stat_t).Uid, want.mode, want.uid)
		}
	}
	if passwd, _ := os.ReadFile(filepath.Join(rootfs, "etc/passwd")); !strings.Contains(string(passwd), "xenha-bridge:x:65532:65532:") {
		t.Errorf("/etc/passwd: %s", passwd)
	}
	if entries, _ := os.ReadDir(rootfs); len(entries) > 0 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		// buildah adds empty dev, proc, run and sys mount points to a container.
		for _, n := range names {
			if !slices.Contains([]string{"etc", "tmp", "var", "xenha-bridge", "dev", "proc", "run", "sys"}, n) {
				t.Errorf("unexpected /%s in the image (has %v)", n, names)
			}
		}
	}
	b.out("umount", ctr)

	// version, from inside the image, as its non-root user.
	if got := b.out("run", "--isolation", "chroot", ctr, "/xenha-bridge", "version"); got != "xenha-bridge image-test\n" {
		t.Fatalf("version in the image: %q", got)
	}

	// serve --simulate inside the image, in the background.
	grpcAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	control := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var serveOut bytes.Buffer
	serve := b.cmd(ctx, "run", "--isolation", "chroot", ctr, "/xenha-bridge", "serve", "--simulate",
		"--listen", grpcAddr, "--sim-control", control, "--sim-port", "0", "--journal", "/tmp/j.db", "--metrics", metricsAddr)
	serve.Stdout, serve.Stderr = &serveOut, &serveOut
	serve.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	serve.Cancel = func() error { return syscall.Kill(-serve.Process.Pid, syscall.SIGTERM) } // buildah and what it runs
	serve.WaitDelay = 10 * time.Second
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		serve.Wait()
		syscall.Kill(-serve.Process.Pid, syscall.SIGKILL) // anything left behind
		if t.Failed() {
			t.Logf("serve --simulate in the image:\n%s", serveOut.String())
		}
	}()

	// health, from inside the image: the probe a container runtime runs.
	if got := b.out("run", "--isolation", "chroot", ctr, "/xenha-bridge", "health", "--addr", grpcAddr, "--wait", "60s"); got != grpcAddr+" SERVING\n" {
		t.Fatalf("health in the image: %q", got)
	}

	// The metrics, from outside: the simulated pool is watched in there.
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`xenha_bridge_pool_controller{controller="cloudstack",pool="sim"} 1`,
		`xenha_bridge_build_info{goversion=`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("the metrics lack %s", want)
		}
	}
}
